"""Settings parsing: required values, validation, and one clear line per problem."""

import base64

import pytest

from webapp import config

VALID = {"DATABASE_URL": "postgresql://postgres@localhost/howdah", "SECRET_KEY": "s" * 32}


def web(**changes):
    environ = {**VALID, **changes}
    return config.web_settings({k: v for k, v in environ.items() if v is not None})


def test_defaults():
    settings = web()
    assert settings["HOWDAH_ENV"] == "production"
    assert settings["DB_POOL_MIN_SIZE"] == 1
    assert settings["DB_POOL_MAX_SIZE"] == 4
    assert settings["DB_POOL_TIMEOUT"] == 1.5
    assert settings["DB_LOCK_TIMEOUT_MS"] == 5000
    assert settings["QUEUE_MAX_WAIT_SECONDS"] == 300


@pytest.mark.parametrize(
    ("changes", "name", "fragment"),
    [
        ({"DATABASE_URL": None}, "DATABASE_URL", "is required"),
        ({"DATABASE_URL": "  "}, "DATABASE_URL", "is required"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL", "postgresql:// URL"),
        ({"DATABASE_URL": "postgresql://h:port/db"}, "DATABASE_URL", "invalid port"),
        ({"DATABASE_URL": "postgresql://h/db?sslmode=sometimes&x"}, "DATABASE_URL", "not a valid"),
        ({"SECRET_KEY": None}, "SECRET_KEY", "required outside development"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY", "at least 16"),
        ({"HOWDAH_ENV": "staging"}, "HOWDAH_ENV", "must be one of"),
        ({"WEB_POOL_MAX_SIZE": "many"}, "WEB_POOL_MAX_SIZE", "whole number"),
        ({"WEB_POOL_MAX_SIZE": "0"}, "WEB_POOL_MAX_SIZE", "at least 1"),
        ({"WEB_POOL_MIN_SIZE": "5"}, "WEB_POOL_MAX_SIZE", "at least WEB_POOL_MIN_SIZE"),
        ({"DB_POOL_TIMEOUT": "-1"}, "DB_POOL_TIMEOUT", "greater than 0"),
        ({"DB_POOL_TIMEOUT": "inf"}, "DB_POOL_TIMEOUT", "finite number"),
        ({"DB_POOL_TIMEOUT": "nan"}, "DB_POOL_TIMEOUT", "finite number"),
        ({"DB_POOL_TIMEOUT": "soon"}, "DB_POOL_TIMEOUT", "number of seconds"),
        ({"DB_LOCK_TIMEOUT_MS": "-1"}, "DB_LOCK_TIMEOUT_MS", "at least 0"),
        ({"QUEUE_MAX_WAIT_SECONDS": "0"}, "QUEUE_MAX_WAIT_SECONDS", "at least 1"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL", "must be one of DEBUG, INFO"),
        ({"DIRECT_DATABASE_URL": "mysql://r@h/x"}, "DIRECT_DATABASE_URL", "postgresql:// URL"),
        ({"DIRECT_DATABASE_URL": "postgresql://h:p/db"}, "DIRECT_DATABASE_URL", "invalid port"),
        ({"DATABASE_TRANSACTION_POOLING": "maybe"}, "DATABASE_TRANSACTION_POOLING", "boolean"),
        (
            {"DATABASE_TRANSACTION_POOLING": "true"},
            "DIRECT_DATABASE_URL",
            "is required with DATABASE_TRANSACTION_POOLING=true",
        ),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT", "must be one of json, text, got 'xml'"),
    ],
)
def test_invalid_settings_stop_startup_with_one_line(changes, name, fragment):
    with pytest.raises(config.ConfigError) as caught:
        web(**changes)
    message = str(caught.value)
    assert caught.value.name == name
    assert name in message and fragment in message
    assert "\n" not in message
    assert isinstance(caught.value, SystemExit)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw%zzsecret@h/db",
        "postgresql://u:pw secret@h/db",
        "postgresql://pw%zzsecret@h/db",
        "postgresql://u:pwsecret@[::1:5432/db",  # libpq quotes the whole URL
    ],
)
def test_a_malformed_database_url_never_quotes_its_credentials(url):
    with pytest.raises(config.ConfigError) as caught:
        web(DATABASE_URL=url)
    assert "not a valid PostgreSQL URL" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_development_needs_no_secret_key():
    settings = web(HOWDAH_ENV="development", SECRET_KEY=None)
    assert settings["SECRET_KEY"] == config.DEV_SECRET_KEY


@pytest.mark.parametrize(
    "placeholder", [config.DEV_SECRET_KEY, "change-me-to-a-long-random-string"]
)
def test_a_placeholder_secret_key_stops_production_but_not_development(placeholder):
    with pytest.raises(config.ConfigError) as caught:
        web(SECRET_KEY=placeholder)
    assert caught.value.name == "SECRET_KEY" and "placeholder" in str(caught.value)
    assert web(SECRET_KEY=placeholder, HOWDAH_ENV="development")["SECRET_KEY"] == placeholder


def test_development_keeps_a_given_secret_key():
    assert web(HOWDAH_ENV="Development")["SECRET_KEY"] == "s" * 32


def test_postgres_scheme_alias_is_accepted():
    assert web(DATABASE_URL="postgres://u:p@db:5433/x")["DATABASE_URL"].startswith("postgres://")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("off", False),
        ("", False),
        (None, True),
    ],
)
def test_parse_bool(raw, expected):
    environ = {} if raw is None else {"FLAG": raw}
    assert config.parse_bool(environ, "FLAG", default=True) is expected


def test_parse_bool_rejects_other_words():
    with pytest.raises(config.ConfigError, match="FLAG must be a boolean"):
        config.parse_bool({"FLAG": "maybe"}, "FLAG", default=False)


def test_worker_settings_need_no_secret_and_split_queues():
    settings = config.worker_settings(
        {
            "DATABASE_URL": VALID["DATABASE_URL"],
            "WORKER_QUEUES": " sms, ,email ",
            "WORKER_CONCURRENCY": "3",
        }
    )
    assert settings["WORKER_QUEUES"] == ["sms", "email"]
    assert settings["WORKER_CONCURRENCY"] == 3
    assert settings["DB_POOL_MAX_SIZE"] == 8
    assert settings["WORKER_SHUTDOWN_TIMEOUT"] == 30.0


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [("0", "at least 1"), ("65", "at most 64"), ("two", "whole number")],
)
def test_worker_processes_are_bounded(raw, fragment):
    with pytest.raises(config.ConfigError) as caught:
        config.worker_flag_settings({"WORKER_PROCESSES": raw})
    assert caught.value.name == "WORKER_PROCESSES"
    assert fragment in str(caught.value)


@pytest.mark.parametrize(("raw", "expected"), [(None, 1), ("", 1), (" 4 ", 4), ("64", 64)])
def test_worker_processes_default_to_one(raw, expected):
    environ = {} if raw is None else {"WORKER_PROCESSES": raw}
    assert config.worker_flag_settings(environ)["WORKER_PROCESSES"] == expected


def test_worker_settings_require_database_url():
    with pytest.raises(config.ConfigError, match="DATABASE_URL is required"):
        config.worker_settings({})


@pytest.mark.parametrize(("raw", "expected"), [(None, 5), ("12", 12), ("0", None)])
def test_organization_cap_defaults_to_five_and_zero_lifts_it(raw, expected):
    environ = {"DATABASE_URL": "postgresql://localhost/x"}
    if raw is not None:
        environ["ORG_MAX_RUNNING"] = raw
    assert config.worker_settings(environ)["ORG_MAX_RUNNING"] == expected


def test_housekeeping_settings_come_from_the_environment_alone():
    settings = config.housekeeping_settings({"JOB_RETENTION_DAYS": "3"})
    assert settings == {
        "WORKER_STALLED_AFTER": 30,
        "LOST_JOB_MAX_ATTEMPTS": 5,
        "JOB_RETENTION_DAYS": 3,
        "SIGN_IN_RETENTION_DAYS": 30,
        "SMS_RETENTION_DAYS": 90,
    }
    with pytest.raises(config.ConfigError, match="WORKER_STALLED_AFTER"):
        config.housekeeping_settings({"WORKER_STALLED_AFTER": "5"})


def test_a_command_needs_no_secret_key_but_a_given_one_is_checked():
    environ = {"DATABASE_URL": VALID["DATABASE_URL"]}
    assert config.web_settings(environ, serving=False)["SECRET_KEY"] is None
    with pytest.raises(config.ConfigError):
        config.web_settings({**environ, "SECRET_KEY": "short"}, serving=False)


def test_the_worker_checks_its_log_level_too():
    with pytest.raises(config.ConfigError) as caught:
        config.worker_settings({"DATABASE_URL": VALID["DATABASE_URL"], "LOG_LEVEL": "x"})
    assert caught.value.name == "LOG_LEVEL"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "json"),
        ({"HOWDAH_ENV": "development"}, "text"),
        ({"HOWDAH_ENV": "development", "LOG_FORMAT": " JSON "}, "json"),
        ({"LOG_FORMAT": "text"}, "text"),
        ({"LOG_FORMAT": ""}, "json"),
    ],
)
def test_log_format_defaults_to_json_outside_development(changes, expected):
    assert web(**changes)["LOG_FORMAT"] == expected
    worker = config.worker_settings({"DATABASE_URL": VALID["DATABASE_URL"], **changes})
    assert worker["LOG_FORMAT"] == expected


def test_providers_default_to_the_console():
    settings = config.worker_settings(VALID)
    assert settings["SMS_PROVIDER"] == "console"
    assert settings["EMAIL_PROVIDER"] == "console"
    assert settings["TELNYX_BASE_URL"] == "https://api.telnyx.com/v2"
    assert settings["SMTP_PORT"] == 587
    assert settings["PUBLIC_URL"] == "http://localhost:8000"


@pytest.mark.parametrize(
    ("changes", "name", "fragment"),
    [
        ({"SMS_PROVIDER": "twilio"}, "SMS_PROVIDER", "must be one of console, telnyx"),
        ({"SMS_PROVIDER": "telnyx"}, "TELNYX_API_KEY", "is required with SMS_PROVIDER=telnyx"),
        (
            {"SMS_PROVIDER": "telnyx", "TELNYX_API_KEY": "KEY"},
            "TELNYX_FROM",
            "or TELNYX_MESSAGING_PROFILE_ID is required",
        ),
        ({"TELNYX_BASE_URL": "api.telnyx.com"}, "TELNYX_BASE_URL", "http:// or https://"),
        ({"TELNYX_TIMEOUT": "0"}, "TELNYX_TIMEOUT", "greater than 0"),
        ({"EMAIL_PROVIDER": "smtp"}, "SMTP_HOST", "is required with EMAIL_PROVIDER=smtp"),
        (
            {"EMAIL_PROVIDER": "smtp", "SMTP_HOST": "mail.example.com"},
            "SMTP_FROM",
            "is required with EMAIL_PROVIDER=smtp",
        ),
        ({"SMTP_SECURITY": "ssl"}, "SMTP_SECURITY", "must be one of starttls, tls, none"),
        ({"SMTP_PORT": "0"}, "SMTP_PORT", "at least 1"),
        ({"PUBLIC_URL": "howdah.example.com"}, "PUBLIC_URL", "http:// or https://"),
    ],
)
def test_a_half_configured_provider_stops_the_worker(changes, name, fragment):
    with pytest.raises(config.ConfigError) as caught:
        config.worker_settings({**VALID, **changes})
    assert caught.value.name == name
    assert fragment in str(caught.value)


def test_each_security_mode_has_its_own_default_port():
    ports = {
        mode: config.email_settings({"SMTP_SECURITY": mode})["SMTP_PORT"]
        for mode in config.SMTP_SECURITY
    }
    assert ports == {"starttls": 587, "tls": 465, "none": 25}


def test_a_configured_telnyx_sender_is_accepted():
    settings = config.sms_settings(
        {
            "SMS_PROVIDER": "telnyx",
            "TELNYX_API_KEY": "KEY",
            "TELNYX_MESSAGING_PROFILE_ID": "profile",
            "TELNYX_BASE_URL": "http://127.0.0.1:9999/v2/",
        }
    )
    assert settings["TELNYX_BASE_URL"] == "http://127.0.0.1:9999/v2"
    assert settings["TELNYX_MESSAGING_PROFILE_ID"] == "profile"


def test_the_web_process_reads_the_webhook_key():
    key = base64.b64encode(bytes(range(32))).decode()
    settings = web(TELNYX_PUBLIC_KEY=f" {key} ", TELNYX_WEBHOOK_TOLERANCE_SECONDS="60")
    assert settings["TELNYX_PUBLIC_KEY"] == key
    assert settings["TELNYX_WEBHOOK_TOLERANCE_SECONDS"] == 60


@pytest.mark.parametrize("key", ["abc=", "not base64!", base64.b64encode(b"x" * 31).decode()])
def test_a_malformed_webhook_key_stops_the_web_process(key):
    with pytest.raises(config.ConfigError, match="TELNYX_PUBLIC_KEY must be the base64"):
        web(TELNYX_PUBLIC_KEY=key)


def test_the_direct_url_defaults_to_database_url():
    settings = web()
    assert settings["DIRECT_DATABASE_URL"] == VALID["DATABASE_URL"]
    assert settings["DATABASE_TRANSACTION_POOLING"] is False


def test_a_pooled_database_url_comes_with_a_direct_one_for_web_and_worker():
    pooled = {
        "DATABASE_URL": "postgresql://howdah@pgbouncer:6432/howdah",
        "DIRECT_DATABASE_URL": "postgresql://howdah@db:5432/howdah",
        "DATABASE_TRANSACTION_POOLING": "yes",
    }
    for settings in (web(**pooled), config.worker_settings(pooled)):
        assert settings["DATABASE_URL"] == pooled["DATABASE_URL"]
        assert settings["DIRECT_DATABASE_URL"] == pooled["DIRECT_DATABASE_URL"]
        assert settings["DATABASE_TRANSACTION_POOLING"] is True


def test_a_command_may_be_given_the_direct_url_alone():
    settings = config.web_settings({"DIRECT_DATABASE_URL": VALID["DATABASE_URL"]}, serving=False)
    assert settings["DATABASE_URL"] is None
    assert settings["DIRECT_DATABASE_URL"] == VALID["DATABASE_URL"]


def test_metrics_settings_default_to_no_address_and_no_token_but_loopback_in_development():
    settings = web()
    assert settings["METRICS_TOKEN"] is None
    assert settings["METRICS_ALLOW_FROM"] == ()
    development = web(HOWDAH_ENV="development")["METRICS_ALLOW_FROM"]
    assert [str(n) for n in development] == ["127.0.0.1/32", "::1/128"]
    settings = web(METRICS_TOKEN=" " + "t" * 16 + " ", METRICS_ALLOW_FROM=" 10.0.0.0/8, 192.0.2.7 ")
    assert settings["METRICS_TOKEN"] == "t" * 16
    assert [str(n) for n in settings["METRICS_ALLOW_FROM"]] == ["10.0.0.0/8", "192.0.2.7/32"]
    assert web(METRICS_ALLOW_FROM="none")["METRICS_ALLOW_FROM"] == ()
    assert web(METRICS_ALLOW_FROM="")["METRICS_ALLOW_FROM"] == ()


@pytest.mark.parametrize(
    ("changes", "name", "fragment"),
    [
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN", "16 to 256 characters"),
        ({"METRICS_TOKEN": "t" * 257}, "METRICS_TOKEN", "16 to 256 characters"),
        ({"METRICS_TOKEN": "é" * 16}, "METRICS_TOKEN", "printable ASCII"),
        ({"METRICS_TOKEN": "a b" * 8}, "METRICS_TOKEN", "printable ASCII"),
        ({"METRICS_ALLOW_FROM": "localhost"}, "METRICS_ALLOW_FROM", "IP addresses or networks"),
        ({"METRICS_ALLOW_FROM": "10.0.0.1/8"}, "METRICS_ALLOW_FROM", "host bits set"),
        ({"METRICS_ALLOW_FROM": "10.0.0.0/33"}, "METRICS_ALLOW_FROM", "IP addresses"),
        ({"METRICS_ALLOW_FROM": ",".join(["10.0.0.1"] * 65)}, "METRICS_ALLOW_FROM", "at most 64"),
    ],
)
def test_invalid_metrics_settings(changes, name, fragment):
    with pytest.raises(config.ConfigError) as caught:
        web(**changes)
    assert caught.value.name == name
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)
