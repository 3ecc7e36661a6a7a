import threading

import pytest

from seglab.utils.background import Background


def test_one_call_at_a_time_off_the_main_thread_and_errors_come_back():
    background, threads = Background("test"), []
    background.submit(lambda: threads.append(threading.current_thread().name))
    background.submit(lambda: threads.append(threading.current_thread().name))  # waits first
    background.close()
    assert len(threads) == 2 and all(name.startswith("test") for name in threads)
    background.submit(lambda: 1 / 0)  # restarts after close
    with pytest.raises(ZeroDivisionError):
        background.wait()
    background.close()
