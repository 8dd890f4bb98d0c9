"""The edge as a hostile client meets it through the real HAProxy (deploy/haproxy.cfg) and
directly at a node: Origin, per-source-IP limits, slowloris, sid-table poisoning, TLS
(docs/FAULTS.md "Hostile client" prints these figures)."""
import http.client
import socket
import ssl
import time
import urllib3

import pytest
import requests
import socketio
import websocket

from harness.client import new_room
from harness.cluster import start_cluster

from .hostile import connect, random_sid

EVIL = "http://evil.example"
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)   # self-signed, tests only


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """Broker, three nodes, HAProxy with TLS; a stick table of 1,000 sids, so that
    5,000 invented sids would evict every real one if they were stored."""
    c = start_cluster(tmp_path_factory.mktemp("guarded"), balancer=False,
                      env={"CHAT_EDGE_STICK_SIZE": "1000"})
    try:
        c.start_balancer(tls=True)
        yield c
    finally:
        c.stop()


def _polling(url, origin=None, sid=None):
    query = "EIO=4&transport=polling" + ("&sid=%s" % sid if sid else "")
    return requests.get(url + "/socket.io/?" + query, timeout=5, verify=False,
                        headers={"Origin": origin} if origin else {})


def _websocket_status(url, origin=None):
    ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    try:
        ws = websocket.create_connection(ws_url, timeout=5, origin=origin,
                                         sslopt={"cert_reqs": ssl.CERT_NONE})
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    opened = ws.recv()
    ws.close()
    return 101 if opened.startswith("0{") else opened


def test_an_evil_origin_is_refused_and_own_or_no_origin_accepted(guarded):
    for url in (guarded.balancer_url, guarded.url("node1"), guarded.tls_url):
        assert _polling(url, EVIL).status_code == 400, url
        assert _websocket_status(url, EVIL) == 400, url
        assert _polling(url, url).status_code == 200 and _websocket_status(url, url) == 101, url
        assert _polling(url).status_code == 200 and _websocket_status(url) == 101, url
    sio = socketio.Client(reconnection=False, ssl_verify=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(guarded.balancer_url, headers={"Origin": EVIL}, transports=["polling"],
                    wait_timeout=5)


def test_nodes_take_the_client_address_from_the_balancer_only(guarded):
    bad_host = "rebound.example"
    sock = connect(guarded.balancer_url, source="127.0.0.2")
    sock.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\n"
                 b"X-Forwarded-For: 6.6.6.6\r\n\r\n" % bad_host.encode())
    assert b" 400 " in sock.recv(4096)
    sock.close()
    node_url = guarded.url("node1")
    sock = connect(node_url, source="127.0.0.3")       # not a trusted proxy: its XFF is dropped
    sock.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\n"
                 b"X-Forwarded-For: 6.6.6.6\r\n\r\n" % bad_host.encode())
    assert b" 400 " in sock.recv(4096)
    sock.close()
    logs = "".join(guarded.nodes[n][0].log() for n in guarded.nodes)
    assert "refused 127.0.0.2: Host" in logs and "refused 127.0.0.3: Host" in logs
    assert "refused 6.6.6.6" not in logs


def test_a_slowloris_request_is_cut_within_the_http_request_timeout(guarded):
    sock = connect(guarded.balancer_url, source="127.0.0.4", timeout=1)
    started = time.monotonic()
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    answer = b""
    for i in range(40):                                  # a header line a second, <= 40 s
        try:
            sock.sendall(b"X-Slow-%d: 1\r\n" % i)
            answer = sock.recv(4096)
            break                                        # an answer (408) or the close
        except socket.timeout:
            continue                                     # still open: the next line
        except OSError:
            break
    cut = time.monotonic() - started
    sock.close()
    print("\nslowloris: cut after %.1f s (%r)" % (cut, answer[:24]))
    assert cut < 12 and (not answer or answer.startswith(b"HTTP/1.1 408")), (cut, answer)


def test_invented_sids_do_not_evict_a_real_polling_session(guarded):
    url = guarded.balancer_url
    opened = _polling(url)                       # a client without a cookie jar
    sid = opened.text[opened.text.index('"sid":"') + 7:].split('"', 1)[0]
    assert "io=" in opened.headers.get("Set-Cookie", "")
    post = requests.post(url + "/socket.io/?EIO=4&transport=polling&sid=" + sid, data="40", timeout=5)
    assert post.status_code == 200 and _polling(url, sid=sid).text.startswith("40")
    started, sent = time.monotonic(), 0
    conn = http.client.HTTPConnection("127.0.0.1", guarded.balancer_port, timeout=5)
    for _ in range(5000):                        # 5x the table: bounded in count and time
        if time.monotonic() - started > 60:
            break
        conn.request("GET", "/socket.io/?EIO=4&transport=polling&sid=" + random_sid())
        conn.getresponse().read()
        sent += 1
    conn.close()
    print("\n%d invented sids in %.1f s" % (sent, time.monotonic() - started))
    for i in range(12):                          # round robin over 3 nodes would miss 2 in 3
        post = requests.post(url + "/socket.io/?EIO=4&transport=polling&sid=" + sid,
                             data='42%d["rooms",{}]' % i, timeout=5)
        assert post.status_code == 200, (i, post.status_code, post.text)
        got = _polling(url, sid=sid)                 # the ack of this request, on its node
        assert got.status_code == 200 and "43%d[" % i in got.text, got.text


def test_tls_serves_the_chat_with_hsts_secure_cookies_and_csp(guarded):
    page = requests.get(guarded.tls_url + "/r/tls/", timeout=5, verify=False)   # a guest session
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    cookies = page.raw.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in c for c in cookies), cookies
    assert any(c.startswith("sessionid=") for c in cookies)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    plain = requests.get(guarded.balancer_url + "/r/tls/", timeout=5)
    assert "Strict-Transport-Security" not in plain.headers
    assert not any("Secure" in c for c in plain.raw.headers.getlist("Set-Cookie"))
    sio = socketio.Client(reconnection=False, ssl_verify=False)
    sio.connect(guarded.tls_url, transports=["websocket"], wait_timeout=10)
    try:
        room = new_room()
        assert sio.call("join", {"room": room, "nick": "tls"}, timeout=10)["ok"]
        assert sio.call("message", {"room": room, "text": "over TLS"}, timeout=10)["ok"]
    finally:
        sio.disconnect()


@pytest.mark.timeout(120)
def test_per_source_ip_limits_refuse_one_address_and_not_the_others(make_cluster):
    c = make_cluster({"CHAT_EDGE_CONN_PER_IP": "10", "CHAT_EDGE_CONN_RATE_PER_IP": "30",
                      "CHAT_EDGE_REQ_RATE_PER_IP": "50"})
    c.start_broker()
    c.start_nodes()
    c.start_balancer()
    url = c.balancer_url

    def healthz(source):
        conn = http.client.HTTPConnection("127.0.0.1", c.balancer_port, timeout=5,
                                          source_address=(source, 0))
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()
    # concurrent connections: 10 held open by 127.0.0.5, the 11th refused
    held = [connect(url, source="127.0.0.5") for _ in range(10)]
    try:
        time.sleep(0.2)
        assert healthz("127.0.0.5") is None               # the 11th: reset at accept
        assert healthz("127.0.0.6") == 200                # another address: unaffected
    finally:
        for sock in held:
            sock.close()
    # connection rate: 30 new connections per 10 s from 127.0.0.7
    statuses = [healthz("127.0.0.7") for _ in range(40)]
    assert statuses[:25] == [200] * 25 and None in statuses[30:], statuses
    assert healthz("127.0.0.8") == 200
    # request rate: 50 requests per 10 s on one keep-alive connection from 127.0.0.9
    conn = http.client.HTTPConnection("127.0.0.1", c.balancer_port, timeout=5,
                                      source_address=("127.0.0.9", 0))
    codes = []
    for _ in range(60):
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        codes.append(response.status)
        if response.status == 429:
            break
    conn.close()
    assert codes.count(200) >= 45 and codes[-1] == 429, codes
    assert healthz("127.0.0.10") == 200
    print("\nper-IP: 11th concurrent connection refused; %d/40 new connections accepted; "
          "request %d answered 429" % (statuses.count(200), len(codes)))
