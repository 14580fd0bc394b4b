"""``python -m tasks.worker`` flags and their environment defaults."""

import pytest

from tasks import worker
from webapp.config import worker_settings

SETTINGS = worker_settings(
    {
        "DATABASE_URL": "postgresql://localhost/x",
        "WORKER_QUEUES": "sms-notifications",
        "WORKER_CONCURRENCY": "4",
    }
)


def test_environment_gives_the_defaults():
    options = worker.parse_args([], SETTINGS)
    assert options.concurrency == 4
    assert options.queues == ["sms-notifications"]
    assert options.shutdown_timeout == 30.0
    assert ":" in options.name  # host:pid


def test_flags_override_the_environment():
    options = worker.parse_args(
        [
            "-c",
            "2",
            "--queues",
            "default, email-digests",
            "--name",
            "w1",
            "--shutdown-timeout",
            "5",
        ],
        SETTINGS,
    )
    assert (options.concurrency, options.queues, options.name, options.shutdown_timeout) == (
        2,
        ["default", "email-digests"],
        "w1",
        5.0,
    )


@pytest.mark.parametrize("args", [["-c", "0"], ["--shutdown-timeout", "-1"], ["-c", "many"]])
def test_bad_flags_exit_with_usage(args, capsys):
    with pytest.raises(SystemExit) as caught:
        worker.parse_args(args, SETTINGS)
    assert caught.value.code == 2
    assert "usage: python -m tasks.worker" in capsys.readouterr().err
