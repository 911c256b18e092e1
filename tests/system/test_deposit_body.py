"""POST /v1/deposits bodies: api.c reads the usual shape (an object of
plain ASCII strings or nulls, no escapes) without jansson and leaves every
other shape to jansson.  Both paths must give the same answer and store
the same deposit; these bodies sit on either side of the line.

Reuses test_api's helpers and test_auditq's client, conftest's session
PostgreSQL and a module server.
"""

import base64

import pytest

from test_api import as_json, env  # noqa: F401 (env: fixture)
from test_auditq import client  # noqa: F401 (fixture: a registered client)


STORED = [
    # (id, body, name, description, content)
    ("plain", b'{"name":"k1","content":"AAEC"}', "k1", None, b"\0\1\2"),
    ("spaced", b' \r\n{ "content" : "AAEC" ,\t"name" : "k 2" , "description" : "d" }\n',
     "k 2", "d", b"\0\1\2"),
    ("null-description", b'{"name":"k3","content":"AAEC","description":null}', "k3", None,
     b"\0\1\2"),
    ("empty-description", b'{"name":"k4","content":"AAEC","description":""}', "k4", "",
     b"\0\1\2"),
    # jansson's side: escapes, non-ASCII, members the API ignores
    ("escaped-solidus", b'{"name":"k\\/6","content":"AA\\/A"}', "k/6", None,
     base64.b64decode("AA/A")),
    ("unicode-escape", b'{"name":"k\\u00e97","content":"AAEC"}', "k\u00e97", None,
     b"\0\1\2"),
    ("utf8-name", '{"name":"ключ","content":"AAEC"}'.encode(), "ключ", None, b"\0\1\2"),
    ("extra-member", b'{"name":"k9","content":"AAEC","tags":[1,{"a":null}]}', "k9", None,
     b"\0\1\2"),
]

REFUSED = [
    ("duplicate-name", b'{"name":"a","name":"b","content":"AAEC"}', "bad_json"),
    ("duplicate-description",
     b'{"name":"a","content":"AAEC","description":"x","description":null}', "bad_json"),
    ("trailing-comma", b'{"name":"a","content":"AAEC",}', "bad_json"),
    ("trailing-garbage", b'{"name":"a","content":"AAEC"}x', "bad_json"),
    ("two-objects", b'{"name":"a","content":"AAEC"}{}', "bad_json"),
    ("unterminated", b'{"name":"a","content":"AAEC', "bad_json"),
    ("nul-byte", b'{"name":"a\0","content":"AAEC"}', "bad_json"),
    ("raw-newline-in-string", b'{"name":"a\nb","content":"AAEC"}', "bad_json"),
    ("null-name", b'{"name":null,"content":"AAEC"}', "bad_request"),
    ("missing-content", b'{"name":"a"}', "bad_request"),
    ("number-content", b'{"name":"a","content":1}', "bad_request"),
    ("nullx", b'{"name":"a","content":"AAEC","description":nullx}', "bad_json"),
    ("bad-base64", b'{"name":"a","content":"AAE"}', "bad_content"),
    # both paths: the fast one and jansson's (an escape sends it there)
    ("empty-content", b'{"name":"k5","content":""}', "bad_content"),
    ("empty-content-jansson", b'{"name":"k\\/5","content":""}', "bad_content"),
    ("empty-name", b'{"name":"","content":"AAEC"}', "bad_name"),
]


@pytest.mark.parametrize("body,name,desc,content", [s[1:] for s in STORED],
                         ids=[s[0] for s in STORED])
def test_body_is_stored_as_sent(env, client, body, name, desc, content):
    status, _, data = client.call(env.port, "POST", "/v1/deposits", body=body)
    assert status == 201, data
    status, doc = client.get(env.port, as_json(data)["uuid"])
    assert status == 200
    assert doc["name"] == name and doc.get("description") == desc
    assert base64.b64decode(doc["content"]) == content


@pytest.mark.parametrize("body,code", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_body_is_refused_with_its_reason(env, client, body, code):
    before = env.deposits_snapshot()
    status, _, data = client.call(env.port, "POST", "/v1/deposits", body=body)
    assert status == 400 and as_json(data)["code"] == code, data
    assert env.deposits_snapshot() == before


def test_fast_shape_still_needs_the_json_content_type(env, client):
    status, _, data = client.call(env.port, "POST", "/v1/deposits",
                                  body=b'{"name":"a","content":"AAEC"}', ctype="text/plain")
    assert status == 415 and as_json(data)["code"] == "unsupported_media_type"
