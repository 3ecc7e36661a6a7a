"""Export a trained model to ONNX or TorchScript: ``python export.py ckpt_path=... format=onnx``."""

from seglab.cli import export as main

if __name__ == "__main__":
    main()
