"""flask orgs / users / tokens: the commands that make accounts and tokens."""

import pytest

from webapp import accounts


def invoke(runner, *args, stdin=None):
    return runner.invoke(args=list(args), input=stdin)


@pytest.fixture
def acme(runner):
    result = invoke(runner, "orgs", "create", "Acme")
    assert result.exit_code == 0, result.output
    return "Acme"


def test_orgs_create_refuses_a_duplicate_name_in_any_case(runner, acme):
    result = invoke(runner, "orgs", "create", "ACME")
    assert result.exit_code == 1
    assert "an organization named 'ACME' exists" in result.output
    assert invoke(runner, "orgs", "create", "Globex").output.endswith(": Globex\n")


def test_users_create_with_a_prompted_password(runner, acme, conn):
    password = "a long enough passphrase"
    result = invoke(
        runner,
        "users",
        "create",
        "--email",
        "Ops@Acme.Example",
        "--org",
        "acme",
        "--role",
        "operator",
        stdin=f"{password}\n{password}\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created operator ops@acme.example in Acme" in result.output
    stored = conn.execute("SELECT email, password_hash FROM users").fetchone()
    assert stored[0] == "ops@acme.example"
    assert stored[1].startswith("scrypt:") and password not in stored[1]
    assert accounts.check_password(conn, "OPS@acme.example", password)["email"] == stored[0]
    role = conn.execute("SELECT organization_id, role FROM memberships").fetchone()
    assert role == (1, "operator")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--org", "Acme", "--role", "viewer"], "short\n", "at least 12 characters"),
        (["--org", "Nowhere", "--role", "viewer"], "long enough password\n", "no organization"),
        (["--org", "Acme", "--role", "owner"], "long enough password\n", "Invalid value"),
    ],
)
def test_users_create_rejects(runner, acme, args, stdin, message):
    result = invoke(
        runner,
        "users",
        "create",
        "--email",
        "x@acme.example",
        "--password-stdin",
        *args,
        stdin=stdin,
    )
    assert result.exit_code != 0
    assert message in result.output


def test_users_create_refuses_a_taken_email(runner, acme):
    for expected in (0, 1):
        result = invoke(
            runner,
            "users",
            "create",
            "--email",
            "x@acme.example",
            "--org",
            "Acme",
            "--role",
            "viewer",
            "--password-stdin",
            stdin="long enough password\n",
        )
        assert result.exit_code == expected
    assert "exists" in result.output


def test_tokens_create_prints_the_secret_once_and_stores_its_hash(runner, acme, conn, app):
    result = invoke(
        runner, "tokens", "create", "--org", "Acme", "--name", "billing", "--expires-days", "30"
    )
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert secret.startswith("hwd_")
    row = conn.execute(
        "SELECT prefix, token_hash, name, expires_at IS NOT NULL FROM api_tokens"
    ).fetchone()
    assert secret.startswith(row[0]) and row[1] == accounts.hash_secret(secret)
    assert row[2:] == ("billing", True)
    assert (
        app.test_client()
        .get("/api/v1/jobs", headers={"Authorization": f"Bearer {secret}"})
        .status_code
        == 200
    )

    listing = invoke(runner, "tokens", "list").output
    assert row[0] in listing and "active" in listing and secret not in listing

    revoked = invoke(runner, "tokens", "revoke", row[0])
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    assert "revoked" in invoke(runner, "tokens", "list", "--org", "Acme").output
    assert invoke(runner, "tokens", "revoke", row[0]).exit_code == 1
    assert (
        app.test_client()
        .get("/api/v1/jobs", headers={"Authorization": f"Bearer {secret}"})
        .status_code
        == 401
    )


def test_tokens_create_needs_an_org_or_platform(runner, acme):
    assert invoke(runner, "tokens", "create").exit_code == 2
    assert invoke(runner, "tokens", "create", "--org", "Acme", "--platform").exit_code == 2
    platform = invoke(runner, "tokens", "create", "--platform")
    assert platform.exit_code == 0


def test_cli_changes_are_audited(runner, acme, conn):
    invoke(runner, "tokens", "create", "--org", "Acme")
    actions = [
        row[0]
        for row in conn.execute("SELECT action FROM audit_log WHERE actor_type = 'cli' ORDER BY id")
    ]
    assert actions == ["organization.create", "token.create"]


@pytest.mark.parametrize(
    "args",
    [("orgs", "create", "Acme"), ("tokens", "create", "--platform", "--name", "ci")],
)
def test_commands_on_an_unmigrated_database_say_so_in_one_line(make_app, empty_db_url, args):
    result = invoke(make_app(empty_db_url).test_cli_runner(), *args)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: the database schema is not installed; run `flask --app webapp migrate`"
    ]


LONG_EMAIL = "a" * 400 + "@x.example"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "create", "--email", "@", "--org", "Acme", "--role", "viewer"], "not an email"),
        (["users", "create", "--email", "a@", "--org", "Acme", "--role", "viewer"], "not an email"),
        (
            ["users", "create", "--email", LONG_EMAIL, "--org", "Acme", "--role", "viewer"],
            "longer than the 320 characters",
        ),
        (["orgs", "create", "o" * 201], "at most 200 characters"),
        (["orgs", "create", "bad\x01name"], "control characters"),
        (["tokens", "create", "--org", "Acme", "--expires-days", "99999999"], "Invalid value"),
    ],
)
def test_out_of_bounds_values_are_refused_in_one_line(runner, acme, args, message):
    result = invoke(runner, *args, stdin="long enough password\n")
    assert result.exit_code != 0
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_value_the_database_refuses_is_said_in_one_line(runner, acme, conn):
    conn.execute("ALTER TABLE organizations ADD CONSTRAINT no_initech CHECK (name <> 'Initech')")
    try:
        result = invoke(runner, "orgs", "create", "Initech")
    finally:
        conn.execute("ALTER TABLE organizations DROP CONSTRAINT no_initech")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        'Error: the database refused a value: new row for relation "organizations" violates'
        ' check constraint "no_initech"'
    ]


def test_orgs_set_sms_rate_changes_the_rate_and_audits_it(runner, acme, conn):
    result = invoke(runner, "orgs", "set-sms-rate", "acme", "25")
    assert result.exit_code == 0, result.output
    assert result.output == "Acme may send 25 SMS a second (was 10)\n"
    assert conn.execute("SELECT sms_per_second FROM organizations").fetchone()[0] == 25
    action, details = conn.execute(
        "SELECT action, details FROM audit_log WHERE action LIKE 'organization.set%'"
    ).fetchone()
    assert (action, details) == (
        "organization.set_sms_rate",
        {"sms_per_second": 25, "previous": 10},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["acme", "0"], "0 is not in the range 1<=x<=1000"),
        (["acme", "1001"], "1001 is not in the range 1<=x<=1000"),
        (["acme", "fast"], "'fast' is not a valid integer"),
        (["Nowhere", "5"], "no organization 'Nowhere'"),
    ],
)
def test_orgs_set_sms_rate_refuses(runner, acme, conn, args, message):
    result = invoke(runner, "orgs", "set-sms-rate", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert conn.execute("SELECT sms_per_second FROM organizations").fetchone()[0] == 10
