"""URL targets, the tls section, request sets, variables and expectations as a scenario
states them (validation only: runs are in tests/load/test_request_sets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen.config.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from loadgen.config.targets import parse_url
from loadgen.config.url_run import UrlRun, url_document, url_scenario
from tests.tls_certs import make_tls_files

LOAD = "connections: 2\nduration: 1s\n"


def _parse(text: str, base_dir: Path | None = None) -> Scenario:
    return parse_scenario("name: t\n" + text, "s.yaml", base_dir=base_dir)


def _error(text: str, base_dir: Path | None = None) -> str:
    with pytest.raises(ScenarioError) as caught:
        _parse(text, base_dir)
    return str(caught.value)


# --- URLs --------------------------------------------------------------------------------


def test_a_url_sets_the_protocol_the_host_header_and_the_default_path() -> None:
    scenario = _parse("target: http://Example.COM:8080/api/items?limit=5#top\n" + LOAD)
    assert scenario.protocol_name == "http"
    assert scenario.protocol.http is not None
    assert scenario.protocol.http.path == "/api/items?limit=5"  # the fragment is never sent
    assert scenario.target_addresses() == [("example.com", 8080)]
    assert scenario.target_authorities() == ["example.com:8080"]
    assert scenario.tls.enabled is False
    # The scheme's default port is left out of Host, as clients send it.
    assert _parse("target: http://example.com/\n" + LOAD).target_authorities() == ["example.com"]


def test_a_path_given_in_http_wins_over_the_urls() -> None:
    scenario = _parse("target: http://h:81/a\nprotocol: {http: {path: /b}}\n" + LOAD)
    assert scenario.protocol.http is not None and scenario.protocol.http.path == "/b"


def test_ipv6_url() -> None:
    scenario = _parse("target: 'http://[::1]:8080/'\n" + LOAD)
    assert scenario.target_addresses() == [("::1", 8080)]
    assert scenario.target_authorities() == ["[::1]:8080"]
    assert parse_url("http://[::1]/").authority == "[::1]"


def test_https_turns_tls_on_and_parses() -> None:
    scenario = _parse("target: https://api.example.com/v1\n" + LOAD)
    assert scenario.tls.enabled and scenario.tls.verify
    assert scenario.target_addresses() == [("api.example.com", 443)]
    assert scenario.to_dict()["tls"]["enabled"] is True


def test_tls_section(tmp_path: Path) -> None:
    make_tls_files(tmp_path)  # ca.pem among them (loaded by the check: a real CA)
    text = (
        "target: https://h:8443/\n"
        + LOAD
        + "tls: {verify: true, ca_file: ca.pem, server_name: h.test, min_version: 1.3}\n"
    )
    scenario = _parse(text, base_dir=tmp_path)
    assert scenario.tls.ca_file == str(tmp_path / "ca.pem")  # relative to the scenario
    assert scenario.tls.min_version == "1.3" and scenario.tls.server_name == "h.test"
    missing = _error(text.replace("ca.pem", "gone.pem"), base_dir=tmp_path)
    assert missing.startswith("s.yaml:5: tls.ca_file: cannot read ")
    assert "gone.pem: No such file or directory" in missing
    assert "client_key needs client_cert" in _error(
        "target: https://h/\n" + LOAD + "tls: {client_key: k.pem}\n"
    )
    assert "min_version" in _error("target: https://h/\n" + LOAD + "tls: {min_version: 1.1}\n")


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("ftp://h/", "", "unsupported URL scheme 'ftp'"),
        ("http://user:pw@h/", "", "credentials in a URL are not sent"),
        ("http://h:99999/", "", "invalid port"),
        ("http://h/a b", "", "percent-encode it"),
        ("http://h/", "protocol: redis\n", "a URL target speaks HTTP, but protocol is redis"),
        ("https://h/", "tls: {enabled: false}\n", "tls.enabled is false, but the target is an"),
        ("http://h/", "tls: {enabled: true}\n", "tls.enabled is true, but the target is an"),
        ("[http://a/, 'b:80']", "", "a list mixes URLs and HOST:PORT"),
        ("[http://a/x, http://b/y]", "", "must share the scheme and the path"),
    ],
)
def test_bad_url_targets(target: str, extra: str, message: str) -> None:
    assert message in _error(f"target: {target}\n{extra}{LOAD}")


def test_a_list_of_urls_spreads_over_their_hosts() -> None:
    scenario = _parse("target: [http://a:81/x, http://b:82/x]\n" + LOAD)
    assert scenario.target_addresses() == [("a", 81), ("b", 82)]
    assert scenario.target_authorities() == ["a:81", "b:82"]


# --- request sets, variables, expectations -----------------------------------------------

SET = """\
target: http://127.0.0.1:8080/base
connections: 2
duration: 1s
protocol:
  http:
    headers: {Accept: "*/*"}
    requests:
      - {name: home, weight: 3}
      - {name: item, path: "/items/${id}", headers: {X-User: "${user.name}"}}
      - method: POST
        path: /items
        body: '{"id": "${uid}"}'
    variables:
      id: {random_int: [1, 9]}
      uid: uuid
      user: {csv: users.csv, order: random}
    expect: {status: [2xx, 304, 400-403]}
"""


def _users(directory: Path, text: str = "name,token\nann,t1\nbob,t2\n") -> Path:
    (directory / "users.csv").write_text(text)
    return directory


def test_request_set_resolves(tmp_path: Path) -> None:
    scenario = _parse(SET, base_dir=_users(tmp_path))
    http = scenario.protocol.http
    assert http is not None and http.requests is not None
    assert [r.label for r in http.requests] == ["home", "item", "POST /items"]
    assert http.requests[0].path == "/base"  # the URL's path is every request's default
    assert http.variables["user"].csv == str(tmp_path / "users.csv")
    assert http.expect.ranges == ((200, 299), (304, 304), (400, 403))
    recorded = scenario.to_dict()["protocol"]["http"]
    assert recorded["expect"] == {"status": ["200-299", 304, "400-403"]}
    assert recorded["variables"]["uid"] == {"uuid": True}
    assert recorded["requests"][2] == {
        "method": "POST",
        "path": "/items",
        "headers": {},
        "body": '{"id": "${uid}"}',
        "weight": 1.0,
    }


def test_one_request_records_no_request_set_keys() -> None:
    recorded = _parse("target: http://h/\n" + LOAD).to_dict()["protocol"]["http"]
    assert recorded == {
        "method": "GET",
        "path": "/",
        "headers": {},
        "body": "",
        "pipeline": 1,
        "expect": {"status": ["200-399"]},
        "max_body": 64 * 1024 * 1024,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('"/items/${id}"', '"/items/${idd}"'), "requests[1].path: unknown variable 'idd'"),
        (("${user.name}", "${user.email}"), "${user.email}: no column 'email'"),
        (("${user.name}", "${user}"), "the file has columns name, token; write ${user.COLUMN}"),
        (("${user.name}", "${id.x}"), "only a csv variable has columns (id is a random_int)"),
        (("{name: home, weight: 3}", "{name: item}"), "the name 'item' is also requests[0]'s"),
        (("method: POST", "method: HEAD"), "HEAD cannot be mixed with other methods"),
        (("random_int: [1, 9]", "random_int: [9, 1]"), "the low end must not exceed"),
        (("uid: uuid", "uid: {uuid: true, choice: [a]}"), "exactly one of sequence, random_int"),
        (("2xx, 304", "2xx, 99"), "must lie within 100-999"),
        (("/items/${id}", "/items/${id"), "without a closing"),
        (("headers: {Accept", "method: PUT\n    headers: {Accept"), "method: with requests"),
    ],
)
def test_request_set_errors(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = SET.replace(*change)
    assert text != SET
    assert message in _error(text, base_dir=_users(tmp_path))


def test_csv_problems_name_the_file_and_line(tmp_path: Path) -> None:
    ragged = _error(SET, base_dir=_users(tmp_path, "name,token\nann,t1\nbob\n"))
    assert ragged.startswith("s.yaml:17: protocol.http.variables.user.csv: ")
    assert "users.csv:3: 1 fields, the header has 2" in ragged
    assert "no rows after the header" in _error(SET, base_dir=_users(tmp_path, "name,token\n"))
    # A value that would end the header it is sent in.
    broken = _error(SET, base_dir=_users(tmp_path, 'name,token\n"a\nb",t\n'))
    assert "data row 1: in a header: 'a\\nb' has a line break" in broken
    missing = _error(SET, base_dir=tmp_path / "elsewhere")
    assert "cannot read " in missing and "users.csv" in missing


def test_a_variable_in_a_single_request() -> None:
    text = "target: http://h/\n" + LOAD
    text += "protocol: {http: {path: '/u/${n}', variables: {n: {sequence: connection}}}}\n"
    http = _parse(text).protocol.http
    assert http is not None and not http.fixed_request and not http.is_set
    assert _parse("target: http://h/x\n" + LOAD).protocol.http.fixed_request  # type: ignore[union-attr]


def test_expect_failures_and_its_default() -> None:
    assert _parse("target: http://h/\n" + LOAD).expect_failures is False
    assert _parse("target: http://h/\nexpect_failures: true\n" + LOAD).expect_failures


# --- runs without a file: the options' scenario -------------------------------------------


def test_url_options_make_a_closed_or_open_scenario(tmp_path: Path) -> None:
    closed = url_scenario(UrlRun("http://127.0.0.1:8080/x", connections=100, duration="30s"))
    assert closed.name == "127.0.0.1-8080"
    assert (
        closed.load_section.model,
        closed.load_section.connections,
        closed.load_section.duration,
    ) == ("closed", 100, 30)
    body = tmp_path / "body.json"
    body.write_text("{}")
    opened = url_scenario(
        UrlRun(
            "http://h/x",
            rate="2k/s",
            method="post",
            headers=("Content-Type: application/json", "X-Trace:  abc "),
            body=f"@{body}",
            requests_per_connection=5,
        )
    )
    plan = opened.load_section
    assert plan.model == "open" and plan.phases[0].rate == (2000.0, 2000.0)
    assert plan.connections == 100 and plan.duration == 10.0  # the defaults
    assert plan.requests_per_connection == 5
    http = opened.protocol.http
    assert http is not None
    assert http.method == "POST" and http.body_file == str(body)
    assert http.headers == {"Content-Type": "application/json", "X-Trace": "abc"}
    # --set works on it as on a file.
    assert url_scenario(UrlRun("http://h/"), ["load.connections=7"]).load_section.connections == 7


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (UrlRun("http://h/", headers=("NoColon",)), "-H 'NoColon': expected 'Name: value'"),
        (UrlRun("http://h/", rate="fast"), "--rate fast: "),
        (UrlRun("http://h/", duration="soon"), "-d/--duration soon: "),
        (UrlRun("http://h:0/"), "URL: URL 'http://h:0/' has an invalid port"),
        (UrlRun("http://h/", body="@/nonexistent/b.json"), "command line: protocol.http.body_file"),
    ],
)
def test_url_option_errors(options: UrlRun, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        url_scenario(options)
    assert message in str(caught.value)


def test_url_document_is_plain_data() -> None:
    document = url_document(UrlRun("https://h/", connections=3, duration="2s"))
    assert document == {
        "name": "h-443",
        "target": "https://h/",
        "protocol": {"http": {}},
        "load": {"phases": [{"duration": "2s"}], "model": "closed", "connections": 3},
    }


def test_example_scenarios_with_request_sets_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "scenarios"
    scenario = load_scenario(root / "http-request-set.yaml")
    assert scenario.protocol.http is not None and scenario.protocol.http.is_set
