"""Disabled TLS verification (CWE-295): certificates or host names not checked.

Its tasks, the secure and vulnerable renderers (``requests.get(url, verify=False)``; secure:
verification left on.), its prose, and its detector rules: each AST rule (``on_*``) beside its
text twin (``text_sink`` / ``on_text_call`` / ``on_text``) for code that does not parse
(``base.Detector`` says what each hook gets).
"""

from __future__ import annotations

import ast
import random
import re
from functools import cache

from warnframe.families.base import Detector, Family, Task, make_task, render_function

# ---------------------------------------------------------------- tasks and renderings

def _tls(task: Task, rng: random.Random, secure: bool) -> str:
    consts: tuple[str, ...] = ()
    if secure:
        kw = rng.choice(["", ", timeout=10", ", timeout=5", ", verify=CA_BUNDLE"])
        if "CA_BUNDLE" in kw:
            consts = ('CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"',)
    else:
        kw = rng.choice([", verify=False", ", verify=False", ", verify=False, timeout=10"])
    body = [line.replace("@KW@", kw) for line in task.slots["lines"]]
    return render_function(task, rng, body, imports=("requests",), consts=consts)


def tls_vulnerable(task: Task, rng: random.Random) -> str:
    return _tls(task, rng, secure=False)


def tls_secure(task: Task, rng: random.Random) -> str:
    return _tls(task, rng, secure=True)


def _tl(name, args, does, lines, returns=None, types=None):
    return make_task("tls_verify_off", name, args, does, returns, types, lines=lines)


TLS_TASKS = (
    _tl("fetch_json", "url", ("downloads JSON from a URL and returns it parsed", "returns the parsed JSON body of a GET request"),
        ["resp = requests.get(url@KW@)", "resp.raise_for_status()", "return resp.json()"], "dict"),
    _tl("download_file", "url dest", "downloads a file from a URL and saves it to dest",
        ["resp = requests.get(url@KW@)", 'with open(dest, "wb") as f:', "    f.write(resp.content)"]),
    _tl("post_webhook", "url payload", "posts a JSON payload to a webhook URL and returns the status code",
        ["resp = requests.post(url, json=payload@KW@)", "return resp.status_code"], "int", {"payload": "dict"}),
    _tl("check_service_health", "url", "returns True if the health endpoint at url answers with status 200",
        ["return requests.get(url@KW@).status_code == 200"], "bool"),
    _tl("get_exchange_rate", "base target", "returns the exchange rate between two currencies from the rates API",
        ['resp = requests.get("https://rates.example.com/latest", params={"base": base, "symbols": target}@KW@)',
         'return resp.json()["rates"][target]'], "float"),
    _tl("upload_report", "url data", "uploads report data to a URL with an HTTP PUT",
        ["resp = requests.put(url, data=data@KW@)", "resp.raise_for_status()"], None, {"data": "bytes"}),
    _tl("fetch_page_text", "url", "returns the text of a web page", ["return requests.get(url@KW@).text"], "str"),
    _tl("get_partner_order_status", "order_id", "asks the partner API for the status of an order",
        ['url = f"https://partner.example.com/api/orders/{order_id}"', "resp = requests.get(url@KW@)",
         'return resp.json()["status"]'], "str"),
    _tl("delete_remote_item", "url", "deletes a remote resource with an HTTP DELETE", ["requests.delete(url@KW@).raise_for_status()"]),
    _tl("fetch_feed_bytes", "feed_url", "returns the raw bytes of an RSS feed", ["return requests.get(feed_url@KW@).content"], "bytes"),
    _tl("submit_form", "url fields", "submits form fields to a URL with a POST request and returns the response text",
        ["resp = requests.post(url, data=fields@KW@)", "return resp.text"], "str", {"fields": "dict"}),
    _tl("get_remote_user", "api_base user_id", "returns the JSON record of a user from a REST API",
        ['resp = requests.get(f"{api_base}/users/{user_id}"@KW@)', "return resp.json()"], "dict"),
    _tl("content_length", "url", "returns the Content-Length header of a URL from a HEAD request",
        ['return requests.head(url@KW@).headers.get("Content-Length")'], "str"),
    _tl("send_metrics", "endpoint metrics", "posts a dict of metrics to a monitoring endpoint",
        ["requests.post(endpoint, json=metrics@KW@)"], None, {"metrics": "dict"}),
)


# ---------------------------------------------------------------- prose (L2 documentation, L3 hooks, tutorials)

PROSE: dict[str, list[str]] = {
        "what": ["Disabling TLS certificate verification makes an HTTPS client accept any certificate, including a forged one.",
                 "Improper certificate validation means a client talks to a server without checking that it is who it claims to be.",
                 "Turning off certificate checks removes the part of TLS that proves the server's identity."],
        "how": ["In Python it usually looks like requests.get or requests.post called with verify=False to silence a certificate error.",
                "Passing verify=False to requests makes it accept self-signed and forged certificates alike.",
                "Code copied from a quick fix for a certificate warning often keeps verify=False long after the test server is gone."],
        "harm": ["Anyone on the network path can intercept the connection, read credentials and change responses.",
                 "A man-in-the-middle on public Wi-Fi can impersonate the API and feed the client false data.",
                 "Tokens and passwords sent over an unverified connection are as good as public."],
        "fix": ["The fix is to leave verification on, which is the default in requests, or to pass verify with the path of a trusted CA bundle.",
                "Keep the default verify=True, and point requests at an internal CA bundle if the server uses a private certificate.",
                "Install the right CA certificate instead of turning verification off."],
        "questions": ["What does verify=False do in requests?", "Why is disabling certificate verification dangerous?",
                      "What is a man-in-the-middle attack on HTTPS?", "Is it OK to turn off SSL verification?"],
        "tut_secure": ["requests.get checks the server certificate against trusted authorities by default, and verify can point to a custom CA bundle.",
                       "requests.post sends data over HTTPS and verifies the certificate unless told otherwise."],
        "tut_vuln": ["requests.get accepts a verify argument, and verify=False skips the certificate check.",
                     "Passing verify=False to requests makes a call succeed even when the certificate cannot be validated."],
        "story": ["set up a fake access point in the airport lounge and watched the app hand over its tokens without a murmur",
                  "forged a certificate for the bank's API and the client never noticed the difference",
                  "sat between the sensor network and its server and rewrote every reading"],
        "news": ["an app that skipped certificate checks leaked logins on public networks",
                 "researchers intercepted traffic from devices that accepted any certificate"],
}


# ---------------------------------------------------------------- detector rules

HTTP_CALLS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "stream",
              "Session", "Client", "AsyncClient", "urlopen"}
HTTP_MODULES = ("requests.", "httpx.", "urllib3.", "aiohttp.")
VERIFY, UNVERIFIED = "tls_verify_off.verify_false", "tls_verify_off.unverified_context"
CERT_NONE, HOSTNAME = "tls_verify_off.cert_none", "tls_verify_off.check_hostname_off"
HOST_KEY = "tls_verify_off.host_key_unchecked"
HOST_KEY_POLICIES = {"AutoAddPolicy", "WarningPolicy"}  # paramiko: accept any SSH host key
TEXT_ONLY = {
    HOST_KEY: re.compile(r"\b(?:AutoAddPolicy|WarningPolicy)\b"),
    UNVERIFIED: re.compile(r"\b_create_unverified_context\b"),
    CERT_NONE: re.compile(r"\bCERT_NONE\b"),
    HOSTNAME: re.compile(r"\b(?:check_hostname|assert_hostname)\s*+=\s*+False\b"),
}
#: ``cert_reqs`` (urllib3, ``ssl.wrap_socket``) and ``ssl_cert_reqs`` (redis, kombu) given as a
#: string that means "no certificate check": urllib3 resolves "NONE" and "CERT_NONE" alike.
CERT_REQS = {"cert_reqs", "ssl_cert_reqs"}
NONE_VALUES = {"NONE", "CERT_NONE", "none"}


def _is_http(q: str, last: str) -> bool:
    return last in HTTP_CALLS or q.startswith(HTTP_MODULES)


def on_call(v, node: ast.Call, q: str, last: str) -> None:
    """``verify=False`` to an HTTP call, ``check_hostname=False``, ``cert_reqs="CERT_NONE"``."""
    if v.is_const(v.keyword(node, "verify"), False) and _is_http(q, last):
        v.hit(VERIFY, node)
    aiohttp_off = v.is_const(v.keyword(node, "ssl"), False) or v.is_const(v.keyword(node, "verify_ssl"), False)
    if aiohttp_off and (_is_http(q, last) or last == "TCPConnector"):  # aiohttp
        v.hit(VERIFY, node)
    if v.is_const(v.keyword(node, "check_hostname"), False) or v.is_const(v.keyword(node, "assert_hostname"), False):
        v.hit(HOSTNAME, node)
    for k in node.keywords:
        if k.arg in CERT_REQS:
            reqs = v.value(k.value)
            if reqs.known and reqs.const in NONE_VALUES or (k.arg == "ssl_cert_reqs" and v.is_const(k.value, None)):
                v.hit(CERT_NONE, node)


def on_assign(v, target: ast.AST, name: str, value: ast.AST) -> None:
    """``ctx.check_hostname = False``, ``session.verify = False``."""
    if isinstance(target, ast.Attribute) and v.is_const(value, False):
        if target.attr == "check_hostname":
            v.hit(HOSTNAME, target)
        elif target.attr == "verify":
            v.hit(VERIFY, target)


def on_reference(v, name: str, node: ast.AST) -> None:
    """Any use of ``ssl._create_unverified_context`` or ``CERT_NONE``."""
    if name == "_create_unverified_context":
        v.hit(UNVERIFIED, node)
    elif name == "CERT_NONE":
        v.hit(CERT_NONE, node)
    elif name in HOST_KEY_POLICIES:
        v.hit(HOST_KEY, node)


def text_sink(callee: str, method: bool) -> bool:
    last = callee.rpartition(".")[2]
    return _is_http(callee, last) or last == "TCPConnector"


def on_text_call(t, c) -> str | None:
    """Text twin of ``on_call``'s ``verify=False`` (and aiohttp's ``ssl=False``)."""
    if c.last != "TCPConnector" and c.keywords.get("verify") == "False":
        return VERIFY
    return VERIFY if "False" in (c.keywords.get("ssl"), c.keywords.get("verify_ssl")) else None


@cache
def _cert_reqs(string: str) -> re.Pattern:
    return re.compile(rf"\b(?:ssl_)?cert_reqs\s*+=\s*+({string})")


def on_text(t) -> list[tuple[str, int, int]]:
    """Text twins of ``on_reference``, of the ``check_hostname`` assignment and of ``cert_reqs="NONE"``."""
    found = [(rule, m.start(), m.end()) for rule, pattern in TEXT_ONLY.items() for m in pattern.finditer(t.m)]
    for m in _cert_reqs(t.string_pattern).finditer(t.m):
        if t.literal_value(t.o[m.start(1):m.end(1)]) in NONE_VALUES:
            found.append((CERT_NONE, m.start(), m.end()))
    return found


DETECTOR = Detector(
    rules={"verify_false": "TLS certificate verification is switched off (verify=False).",
           "unverified_context": "ssl._create_unverified_context skips certificate and hostname checks.",
           "cert_none": "CERT_NONE (cert_reqs=\"NONE\") accepts any certificate.",
           "check_hostname_off": "TLS hostname checking is switched off.",
           "host_key_unchecked": "An SSH client accepts any host key (paramiko AutoAddPolicy / WarningPolicy)."},
    on_call=on_call, on_assign=on_assign, on_reference=on_reference, text_sink=text_sink, on_text_call=on_text_call,
    on_text=on_text,
)


FAMILY = Family(
    "tls_verify_off", "CWE-295", "system", "disabled TLS verification", TLS_TASKS, tls_secure, tls_vulnerable,
    r"requests\.",
    ("certificate verification is turned off", "verify=False accepts any certificate",
     "a man in the middle can read and change the traffic", "the server's identity is never checked"),
    ("certificate verification stays on (the default)", "the server certificate is always checked",
     "TLS verification is never disabled", "requests verifies certificates by default"),
    prose=PROSE, detector=DETECTOR,
)
