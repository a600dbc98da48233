"""Inference from trained weights: one session that loads, chooses, builds and answers
(`xception.inference.session.InferenceSession`), used by predict, eval, serve and explain."""
