"""Export a trained model to ONNX or TorchScript: ``python export.py ckpt_path=... format=onnx``."""

from seglab.export import main

if __name__ == "__main__":
    main()
