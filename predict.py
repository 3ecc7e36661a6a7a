"""Predict masks with a trained model: ``python predict.py ckpt_path=... input=... output=...``."""

from seglab.cli import predict as main

if __name__ == "__main__":
    main()
