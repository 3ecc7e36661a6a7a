"""Evaluate a trained model on any dataset: ``python eval.py ckpt_path=... data=...``."""

from seglab.cli import evaluate as main

if __name__ == "__main__":
    main()
