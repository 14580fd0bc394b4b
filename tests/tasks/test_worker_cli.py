"""``python -m tasks.worker`` flags and their environment defaults."""

import pytest

from tasks import worker
from tasks.worker import supervisor
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "0"], "--concurrency must be at least 1"),
        (["--shutdown-timeout", "-1"], "--shutdown-timeout must be a finite number"),
        (["--shutdown-timeout", "nan"], "--shutdown-timeout must be a finite number"),
        (["--shutdown-timeout", "inf"], "--shutdown-timeout must be a finite number"),
        (["-c", "many"], "invalid int value: 'many'"),
        (["--processes", "0"], "--processes must be from 1 to 64"),
        (["--processes", "65"], "--processes must be from 1 to 64"),
        # Only one worker process takes orders from a parent.
        (["--processes", "2", "--supervisor-fd", "5"], "--supervisor-fd is for one process"),
    ],
)
def test_bad_flags_exit_with_usage(args, message, capsys):
    with pytest.raises(SystemExit) as caught:
        worker.parse_args(args, SETTINGS)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m tasks.worker" in err
    assert message in err


def test_one_process_by_default_and_the_environment_may_ask_for_more():
    assert worker.parse_args([], SETTINGS).processes == 1
    settings = worker_settings(
        {"DATABASE_URL": "postgresql://localhost/x", "WORKER_PROCESSES": "3"}
    )
    options = worker.parse_args([], settings)
    assert options.processes == 3
    assert options.name is None  # each child names itself host:pid
    assert worker.parse_args(["--processes", "1"], settings).processes == 1


def test_children_run_one_process_each_with_the_parents_flags():
    options = worker.parse_args(
        [
            "--processes",
            "4",
            "-c",
            "3",
            "-q",
            "sms,default",
            "--name",
            "w",
            "--shutdown-timeout",
            "7",
        ],
        SETTINGS,
    )
    command = supervisor.child_command(options, 2, 9)
    assert command[1:3] == ["-m", "tasks.worker"]
    child = worker.parse_args(command[3:], SETTINGS)
    assert (child.processes, child.concurrency, child.queues) == (1, 3, ["sms", "default"])
    assert (child.name, child.shutdown_timeout, child.supervisor_fd) == ("w.2", 7.0, 9)


def test_unnamed_children_name_themselves_and_no_queue_means_every_queue():
    options = worker.parse_args(["--processes", "2", "--queues", ""], SETTINGS)
    child = worker.parse_args(supervisor.child_command(options, 1, 5)[3:], SETTINGS)
    assert child.queues == [] and ":" in child.name  # host:pid, its own
