"""Run ``train.py`` once per argument list in ONE interpreter (imports paid once), as the shell
would: ``python train_many.py <train.py> <cases.json> <results.json>``.

Each run goes through the script's real Hydra entry point; its stdout and stderr are captured
together and its exit status is the one the interpreter would give (``SystemExit``: 0 for None,
1 with the message printed for a string, the number otherwise).
"""

import contextlib
import io
import json
import runpy
import sys
import time

from hydra.core.global_hydra import GlobalHydra


def run_once(script: str, args: list[str]) -> dict:
    output = io.StringIO()
    code, start = 0, time.perf_counter()
    sys.argv = [script, *args]
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exit_:
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    GlobalHydra.instance().clear()
    seconds = time.perf_counter() - start
    return {"returncode": code, "output": output.getvalue(), "seconds": seconds}


def main() -> None:
    script, cases_file, results_file = sys.argv[1:4]
    with open(cases_file) as file:
        cases = json.load(file)
    results = {name: run_once(script, args) for name, args in cases.items()}
    with open(results_file, "w") as file:
        json.dump(results, file)


if __name__ == "__main__":
    main()
