"""`xception push`: weights to the Hugging Face Hub, as the folder `export --format hub` writes."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "push", help="upload weights to the Hugging Face Hub with their model card",
        description="Write the weights as a Hub folder (model.safetensors, config.json with timm's keys, README.md "
        "the model card, as `xception export --format hub`) and upload it with huggingface_hub to the model "
        "repository --repo (created if missing; your token from `hf auth login` or HF_TOKEN). --dry-run writes "
        "the folder, prints its files and card, and sends nothing. Load it back anywhere with "
        "`--weights hf-hub:ORG/NAME`.",
    )
    parser.add_argument("--weights", required=True, help="the weight file (from `xception train`, `convert`, ...)")
    parser.add_argument("--repo", required=True, help="the Hub repository id, ORG/NAME")
    parser.add_argument("--license", default="other", help="the license in the card's metadata (e.g. apache-2.0)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", default=None, help="the branch to push to (default: main)")
    parser.add_argument("--dry-run", action="store_true", help="write and list the folder; upload nothing")
    parser.add_argument("--folder", default=None, help="where to write the folder (default: a temporary one, "
                        "kept with --dry-run)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from xception.models.hub_folder import CARD_FILE, write_hub_folder
    from xception.models.weights.hub import parse_hub_id

    repo_id = parse_hub_id(f"hf-hub:{args.repo}").repo_id
    directory = Path(args.folder or tempfile.mkdtemp(prefix="xception-push-"))
    folder = write_hub_folder(args.weights, directory, repo_id=repo_id, license=args.license)
    listing = "\n".join(f"  {path.name} ({path.stat().st_size:,} bytes)" for path in folder.files)
    if args.dry_run:
        print(f"dry run: would upload to https://huggingface.co/{repo_id} (nothing sent); the folder {directory}:\n"
              f"{listing}\n\n{(directory / CARD_FILE).read_text()}")
        return 0
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=args.private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=directory, revision=args.revision,
                               commit_message=f"xception push {Path(args.weights).name}")
    print(f"uploaded to {commit.commit_url}:\n{listing}\nload it with --weights hf-hub:{repo_id}@{commit.oid}")
    return 0
