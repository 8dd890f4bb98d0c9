"""chat/edge.py and the edge's settings: client address, Host on /socket.io/, origins, request rates."""
import pytest

from chat.edge import EdgeApp, OriginPolicy, client_address, host_allowed
from chatstream import config

TRUSTED = frozenset(config.TRUSTED_PROXIES)


def test_the_client_address_comes_from_x_forwarded_for_only_when_the_balancer_sends_it():
    via_balancer = {"REMOTE_ADDR": config.BALANCER_SOURCE, "HTTP_X_FORWARDED_FOR": "10.9.9.9, 192.0.2.7",
                    "HTTP_X_FORWARDED_PROTO": "https"}
    assert client_address(via_balancer, TRUSTED) == "192.0.2.7"      # the balancer's own line
    assert via_balancer["HTTP_X_FORWARDED_PROTO"] == "https"
    for peer in ("192.0.2.50", "127.0.0.1"):       # a local process is not the balancer either
        direct = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": "6.6.6.6",
                  "HTTP_X_FORWARDED_PROTO": "https"}
        assert client_address(direct, TRUSTED) == peer
        assert "HTTP_X_FORWARDED_FOR" not in direct and "HTTP_X_FORWARDED_PROTO" not in direct


@pytest.mark.parametrize("host, allowed", [("127.0.0.1:8000", True), ("localhost", True),
                                           ("[::1]:8443", True), ("evil.example:8000", False),
                                           ("", False)])
def test_host_is_checked_like_allowed_hosts(host, allowed):
    assert host_allowed({"HTTP_HOST": host}, ["127.0.0.1", "localhost", "[::1]"]) is allowed


def test_the_edge_refuses_a_foreign_host_on_socketio_only():
    app = EdgeApp(lambda environ, start: [b"app"], ["127.0.0.1"], TRUSTED)
    statuses = []
    start = lambda status, headers: statuses.append(status)   # noqa: E731
    assert app({"PATH_INFO": "/socket.io/", "HTTP_HOST": "rebound.example"}, start) != [b"app"]
    assert app({"PATH_INFO": "/socket.io/", "HTTP_HOST": "127.0.0.1:8001"}, start) == [b"app"]
    assert app({"PATH_INFO": "/", "HTTP_HOST": "rebound.example"}, start) == [b"app"]  # Django's
    assert statuses == ["400 Bad Request"]


def test_own_origins_are_the_balancers_the_same_for_every_node():
    assert config.own_origins(8000, 8443) == [
        "http://127.0.0.1:8000", "http://localhost:8000", "https://127.0.0.1:8443",
        "https://localhost:8443"]
    assert "https://127.0.0.1:0" not in config.own_origins(8000, 0)


def test_a_nodes_own_origin_is_allowed_only_at_that_node():
    policy = OriginPolicy(config.own_origins(8000, 8443))
    at = lambda host: {"HTTP_HOST": host, "wsgi.url_scheme": "http"}   # noqa: E731
    assert policy("http://127.0.0.1:8000", at("127.0.0.1:8002"))
    assert policy("http://127.0.0.1:8001", at("127.0.0.1:8001"))
    assert not policy("http://127.0.0.1:8001", at("127.0.0.1:8002"))   # another node's page
    assert not policy("http://127.0.0.1:8001", at("127.0.0.1:8000"))   # through the balancer
    assert not policy("http://evil.example", at("127.0.0.1:8001"))


def test_request_rates_take_overrides_and_name_a_bad_one():
    rates = config.request_rates("rooms=1/3, members=0.5/2")
    assert rates["rooms"] == (1.0, 3) and rates["members"] == (0.5, 2)
    assert rates["join"] == config.REQUEST_RATES["join"]
    for bad in ("nonsense=1/2", "rooms=fast"):
        with pytest.raises(ValueError, match="CHAT_REQUEST_RATES"):
            config.request_rates(bad)


def test_check_deploy_is_clean_in_the_documented_production_environment(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "DJANGO_"))}
    env.update(DJANGO_SECRET_KEY="x" * 50 + "production-like-secret-key", DJANGO_HTTPS="1",
               DJANGO_HSTS_PRELOAD="1", DJANGO_ALLOWED_HOSTS="chat.example.com",
               CHAT_DATABASE_PATH=str(tmp_path / "db.sqlite3"))
    done = subprocess.run([sys.executable, "web/manage.py", "check", "--deploy", "--fail-level",
                           "WARNING"], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "no issues" in done.stdout, done.stdout + done.stderr
