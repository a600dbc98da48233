"""`xception serve`: trained weights behind HTTP, in the Open Inference Protocol (KServe's v2 REST
protocol, also spoken by Triton, OpenVINO Model Server and MLServer), with a simple `/predict`, a page
to try it, dynamic micro-batching, Prometheus metrics and a graceful stop (docs/serve.md).

- `config`: the server's settings and their defaults;
- `model`: the weights as what the server runs (the one place that loads them);
- `batcher`: the bounded queue that groups requests into batches for one inference thread;
- `protocol`: the v2 request and response schemas and the tensors they carry;
- `metrics`: the Prometheus collectors;
- `app`: the routes; `server`: uvicorn running them.
"""
