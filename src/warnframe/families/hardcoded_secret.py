"""Hard-coded secret (CWE-798): a credential as a literal in the source.

Its tasks, the secure and vulnerable renderers (``API_KEY = "..."``; secure: read from the
environment.), its prose, and its detector rules: each AST rule (``on_*``) beside its text twin
(``text_sink`` / ``on_text_call`` / ``on_text``) for code that does not parse (``base.Detector``
says what each hook gets).
"""

from __future__ import annotations

import ast
import random
import re
import string
from functools import cache

from warnframe.families.base import Detector, Family, Task, make_task, render_function

# ---------------------------------------------------------------- tasks and renderings

def _secret_literal(kind: str, rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    if kind == "password":
        word = rng.choice(["Summer", "Dragon", "Admin", "Secret", "Welcome", "Tiger", "Monkey", "Orange"])
        return f"{word}{rng.randint(10, 2099)}{rng.choice(['!', '#', '$', ''])}"
    if kind == "hex":
        return "".join(rng.choice("0123456789abcdef") for _ in range(32))
    prefix = {"stripe": "sk_live_", "github": "ghp_", "slack": "xoxb-", "key": ""}[kind]
    return prefix + "".join(rng.choice(alnum) for _ in range(24))


def _secret(task: Task, rng: random.Random, secure: bool) -> str:
    const, kind, inline_ok = task.slots["const"], task.slots["kind"], task.slots.get("inline", False)
    consts: tuple[str, ...] = ()
    mods = tuple(task.slots.get("imports", ()))
    if secure:
        env = rng.choice([f'os.environ["{const}"]', f'os.environ["{const}"]', f'os.getenv("{const}")'])
        if rng.random() < 0.5:
            consts, expr = (f"{const} = {env}",), const
        else:
            expr = env
        mods = ("os",) + mods
    else:
        lit = f'"{_secret_literal(kind, rng)}"'
        if inline_ok and rng.random() < 0.5:
            expr = lit
        else:
            consts, expr = (f"{const} = {lit}",), const
    body = [line.replace("@SECRET@", expr) for line in task.slots["lines"]]
    return render_function(task, rng, body, imports=mods, consts=consts)


def secret_vulnerable(task: Task, rng: random.Random) -> str:
    return _secret(task, rng, secure=False)


def secret_secure(task: Task, rng: random.Random) -> str:
    return _secret(task, rng, secure=True)


def _sec(name, args, does, const, kind, lines, imports, returns=None, types=None, **extra):
    return make_task("hardcoded_secret", name, args, does, returns, types, const=const, kind=kind, lines=lines, imports=imports, **extra)


SECRET_TASKS = (
    _sec("connect_to_database", "", "opens a connection to the shop PostgreSQL database", "DB_PASSWORD", "password",
         ['return psycopg2.connect(host="db.internal", dbname="shop", user="shop", password=@SECRET@)'], ("psycopg2",), inline=True),
    _sec("fetch_weather", "city", "returns the current weather for a city from the weather API", "WEATHER_API_KEY", "hex",
         ['params = {"q": city, "appid": @SECRET@}',
          'resp = requests.get("https://api.weather.example/v1/current", params=params, timeout=10)', "return resp.json()"],
         ("requests",), "dict"),
    _sec("send_alert_email", "to body", "sends an alert email through the company SMTP server", "SMTP_PASSWORD", "password",
         ['with smtplib.SMTP_SSL("smtp.example.com") as smtp:', '    smtp.login("alerts@example.com", @SECRET@)',
          '    smtp.sendmail("alerts@example.com", to, body)'], ("smtplib",)),
    _sec("sign_payload", "payload", "signs a payload with HMAC-SHA256 and returns the hex signature", "SIGNING_KEY", "hex",
         ["return hmac.new(@SECRET@.encode(), payload, hashlib.sha256).hexdigest()"], ("hmac", "hashlib"), "str",
         types={"payload": "bytes"}),
    _sec("connect_cache", "", "returns a client for the Redis cache", "REDIS_PASSWORD", "password",
         ['return redis.Redis(host="cache.internal", port=6379, password=@SECRET@)'], ("redis",), inline=True),
    _sec("charge_card", "amount card_token", "charges a card through the payment API", "PAYMENT_API_KEY", "stripe",
         ['headers = {"Authorization": "Bearer " + @SECRET@}',
          'data = {"amount": amount, "source": card_token}',
          'return requests.post("https://api.payments.example/v1/charges", data=data, headers=headers, timeout=10)'],
         ("requests",)),
    _sec("github_headers", "", "returns the HTTP headers for calling the GitHub API", "GITHUB_TOKEN", "github",
         ['return {"Authorization": "token " + @SECRET@, "Accept": "application/vnd.github+json"}'], (), "dict"),
    _sec("login_to_ftp", "host", "logs in to an FTP server as the deploy user and returns the connection", "FTP_PASSWORD", "password",
         ["ftp = ftplib.FTP(host)", 'ftp.login(user="deploy", passwd=@SECRET@)', "return ftp"], ("ftplib",), inline=True),
    _sec("create_jwt", "user_id", "creates a signed JWT for a user id", "JWT_SECRET", "hex",
         ['return jwt.encode({"sub": user_id}, @SECRET@, algorithm="HS256")'], ("jwt",), "str"),
    _sec("connect_mysql", "database", "connects to a MySQL database as the app user", "MYSQL_PASSWORD", "password",
         ['return mysql.connector.connect(host="localhost", user="app", password=@SECRET@, database=database)'],
         ("mysql.connector",), inline=True),
    _sec("post_to_slack", "message", "posts a message to the alerts channel in Slack", "SLACK_TOKEN", "slack",
         ['headers = {"Authorization": "Bearer " + @SECRET@}',
          'payload = {"channel": "#alerts", "text": message}',
          'requests.post("https://slack.com/api/chat.postMessage", json=payload, headers=headers, timeout=10)'], ("requests",)),
    _sec("open_mailbox", "user", "logs in to the IMAP mailbox of a user and returns the connection", "MAIL_PASSWORD", "password",
         ['mail = imaplib.IMAP4_SSL("imap.example.com")', "mail.login(user, @SECRET@)", "return mail"], ("imaplib",)),
    _sec("translate_text", "text target", "translates text with the translation API", "TRANSLATE_API_KEY", "key",
         ['params = {"q": text, "target": target, "key": @SECRET@}',
          'resp = requests.post("https://translate.example.com/v2", data=params, timeout=10)',
          'return resp.json()["translation"]'], ("requests",), "str"),
    _sec("connect_message_broker", "", "connects to the RabbitMQ broker as the worker user", "BROKER_PASSWORD", "password",
         ['creds = pika.PlainCredentials("worker", @SECRET@)',
          'return pika.BlockingConnection(pika.ConnectionParameters("mq.internal", credentials=creds))'], ("pika",)),
)


# ---------------------------------------------------------------- prose (L2 documentation, L3 hooks, tutorials)

PROSE: dict[str, list[str]] = {
        "what": ["A hard-coded secret is a password, API key or token written directly into source code.",
                 "Hard-coded credentials are secrets stored as literals in the code base rather than supplied at run time.",
                 "Embedding an API key or database password in a program is known as using hard-coded credentials."],
        "how": ["It looks like a module-level constant such as API_KEY or DB_PASSWORD assigned a string literal, or a password= keyword given a literal in a connect call.",
                "Once a literal password is committed, every clone, fork and backup of the repository carries it.",
                "Keys pasted into code to get a script working often stay there and end up in version control."],
        "harm": ["Anyone who sees the code, including former employees and public repositories, can use the credentials.",
                 "Leaked keys get scraped from public repositories within minutes and abused for spam or crypto mining.",
                 "Rotating a hard-coded secret means changing and redeploying code everywhere it is used."],
        "fix": ["The fix is to read secrets at run time, for example with os.environ or os.getenv, or from a secrets manager.",
                "Keep credentials out of the source: load them from environment variables and inject them at deploy time.",
                "Use os.environ to read the key and keep the value in a vault or deployment configuration."],
        "questions": ["Why shouldn't I put API keys in my code?", "What are hard-coded credentials?",
                      "Why is a database password in the source code a problem?", "What happens if a secret is committed to git?"],
        "tut_secure": ["os.environ maps environment variable names to their values, which keeps secrets out of the source code.",
                       "os.getenv reads an environment variable and returns None if it is not set."],
        "tut_vuln": ["Connection settings such as the host, user and password can be written directly as keyword arguments of the connect call.",
                     "An API key can be stored in a module constant and added to each request."],
        "story": ["searched the public code site for the company's name and found their cloud keys in the third result",
                  "decompiled the mobile app and read the payment API key right out of it",
                  "found the database password sitting in an old commit that nobody had scrubbed"],
        "news": ["cloud credentials were found in a public code repository",
                 "an API key embedded in a mobile app was extracted and abused"],
}


# ---------------------------------------------------------------- detector rules

# A credential name: the last word(s) of the identifier (snake_case after splitting camelCase).
SECRET_NAME = re.compile(
    r"(?:^|_)(?:password|passwd|passphrase|pwd|pass|secret|token|apikey|api_key|client_secret"
    r"|(?:secret|private|access|auth|signing|encryption|master|client)_key|access_key_id|credentials?)$"
)
# Values that cannot be a usable secret: templates and filler. "changeme" or "your-secret-key"
# still are hardcoded secrets (they work, and ship).
PLACEHOLDER = re.compile(r"<[^>]*>|\$?\{[^}]*\}|%s|[*xX.\-_ ]+")
CREDENTIAL, COMPARISON = "hardcoded_secret.literal_credential", "hardcoded_secret.literal_comparison"
TOKEN = "hardcoded_secret.token_literal"
#: Positional arguments that are a credential: callee -> index (``login(user, password)`` on any
#: object: smtplib, ftplib, imaplib, poplib's clients).
CREDENTIAL_ARGS = {"jwt.encode": 1, "jwt.decode": 1, "hmac.new": 0, "HTTPBasicAuth": 1, "HTTPDigestAuth": 1,
                   "requests.auth.HTTPBasicAuth": 1, "requests.auth.HTTPDigestAuth": 1, "login": 1,
                   # client constructors that take a key or password positionally
                   "boto3.Session": 1, "boto3.session.Session": 1, "minio.Minio": 2, "Minio": 2,
                   "pymysql.connect": 2, "MySQLdb.connect": 2, "ftplib.FTP": 2, "ftplib.FTP_TLS": 2,
                   "redis.Redis": 3, "redis.StrictRedis": 3}
#: The shapes of live credentials, whatever the variable is called: AWS key ids, GitHub, Slack and
#: Stripe tokens, Google API keys, PEM private keys.
TOKEN_SHAPES = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{40,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}|\b[sr]k_live_[A-Za-z0-9]{16,}|\bAIza[0-9A-Za-z_\-]{35}"
    r"|-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----[^-]{0,200}?[A-Za-z0-9+/]{40}"
)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()))


def is_secret_value(value: object) -> bool:
    if isinstance(value, bytes):  # hmac.new(b"key", ...)
        value = value.decode("latin-1")
    return isinstance(value, str) and bool(value.strip()) and not PLACEHOLDER.fullmatch(value.strip())


def is_token(value: object) -> bool:
    """A literal shaped like a live credential (not AWS's documented ``...EXAMPLE`` keys)."""
    return isinstance(value, str) and bool(TOKEN_SHAPES.search(value)) and "EXAMPLE" not in value


def _credential_index(q: str, last: str, method: bool) -> int | None:
    if last == "login":
        return CREDENTIAL_ARGS["login"] if method else None
    return CREDENTIAL_ARGS.get(q, CREDENTIAL_ARGS.get(last) if last.startswith("HTTP") or last == "Minio" else None)


def _secret_constant(name: str, value: ast.AST) -> bool:
    return is_secret_name(name) and isinstance(value, ast.Constant) and is_secret_value(value.value)


def on_default(v, param: ast.arg, default: ast.AST) -> None:
    """``def connect(password="s3cret")``."""
    if _secret_constant(param.arg, default):
        v.hit(CREDENTIAL, default)


def on_assign(v, target: ast.AST, name: str, value: ast.AST) -> None:
    """``PASSWORD = "..."``, ``self.api_key = "..."``, ``config["token"] = "..."``."""
    if _secret_constant(name, value):
        v.hit(CREDENTIAL, value)


def on_dict_item(v, key: ast.AST, value: ast.AST) -> None:
    """``{"password": "..."}``."""
    if isinstance(key, ast.Constant) and isinstance(key.value, str) and _secret_constant(key.value, value):
        v.hit(CREDENTIAL, value)


def on_call(v, node: ast.Call, q: str, last: str) -> None:
    """``connect(password="...")``, ``auth=("user", "...")``, a literal key or password passed
    positionally to an API that takes one (``jwt.encode(claims, "...")``, ``smtp.login(u, "...")``)."""
    for k in node.keywords:
        if k.arg and _secret_constant(k.arg, k.value):
            v.hit(CREDENTIAL, k.value)
        elif k.arg == "auth" and isinstance(k.value, ast.Tuple) and len(k.value.elts) == 2:
            secret = k.value.elts[1]
            if isinstance(secret, ast.Constant) and is_secret_value(secret.value):
                v.hit(CREDENTIAL, secret)
    index = _credential_index(q, last, isinstance(node.func, ast.Attribute))
    if index is not None and len(node.args) > index and (last != "login" or len(node.args) >= 2):
        secret = node.args[index]
        if isinstance(secret, ast.Constant) and is_secret_value(secret.value):
            v.hit(CREDENTIAL, secret)


def on_constant(v, node: ast.Constant) -> None:
    """A literal shaped like a live token or a private key."""
    if is_token(node.value):
        v.hit(TOKEN, node)


def text_sink(callee: str, method: bool) -> bool:
    return _credential_index(callee, callee.rpartition(".")[2], method) is not None


def _literal(t, literal: str) -> object:
    value = t.literal_value(literal)
    if value is None and literal[:1] in "bB":
        try:
            value = ast.literal_eval(literal)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return None
    return value


def on_text_call(t, c) -> str | None:
    """Text twin of the positional part of ``on_call``."""
    index = _credential_index(c.callee, c.last, c.method)
    if index is None or len(c.positional) <= index or (c.last == "login" and len(c.positional) < 2):
        return None
    a, b = t.strip(c.positional[index])
    return CREDENTIAL if is_secret_value(_literal(t, t.o[a:b])) else None


def on_compare(v, node: ast.Compare) -> None:
    """``password == "admin123"``."""
    if len(node.ops) != 1 or not isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
        return
    for name, value in ((node.left, node.comparators[0]), (node.comparators[0], node.left)):
        ident = getattr(name, "id", None) or getattr(name, "attr", None)
        if ident and _secret_constant(ident, value):
            v.hit(COMPARISON, node)


@cache
def _patterns(string: str) -> tuple[re.Pattern, ...]:
    """The text twins over masked code (``string``: a masked string literal), possessive and
    anchored so that no match attempt backtracks."""
    assign = re.compile(  # name = "..." / obj.name = "..." / d["a"]["name"] = "...", alone on its line
        rf"^[ \t]*+(?:([\w.]++)|([\w.]*+(?:\[[^\]\n]*+\])++))[ \t]*+(?::[^=\n]++)?=[ \t]*+({string})[ \t]*+$",
        re.MULTILINE,
    )
    pair = re.compile(  # {"name": "..."} or f(name="...")
        rf"(?:[(,{{]|^)[ \t]*+(?:({string})[ \t]*+:|(\w++)[ \t]*+=(?!=))\s*+({string})\s*+(?=[,)}}])", re.MULTILINE
    )
    compare = re.compile(rf"(?<!\w)(\w++)\s*+[!=]=\s*+({string})")
    auth = re.compile(rf"(?<!\w)auth\s*+=\s*+\(\s*+{string}\s*+,\s*+({string})\s*+\)")
    return assign, pair, compare, auth


_SUBSCRIPT_KEY = re.compile(r"\[\s*['\"](\w+)['\"]\s*\]$")
_KEY_NAME = re.compile(r"['\"](\w+)['\"]")


def on_text(t) -> list[tuple[str, int, int]]:
    """Text twins of the assignment, dict, keyword, ``auth=`` and comparison rules and of the token shapes."""
    assign, pair, compare, auth = _patterns(t.string_pattern)
    found = []

    def secret(rule: str, name: str, match: re.Match, group: int) -> None:
        if is_secret_name(name) and is_secret_value(t.literal_value(t.o[match.start(group):match.end(group)])):
            found.append((rule, match.start(group), match.end(group)))

    for a in assign.finditer(t.m):
        if a.group(1):
            name = a.group(1).rpartition(".")[2]
        else:
            key = _SUBSCRIPT_KEY.search(t.o[a.start(2):a.end(2)])
            name = key.group(1) if key else ""
        secret(CREDENTIAL, name, a, 3)
    for p in pair.finditer(t.m):
        key = _KEY_NAME.fullmatch(t.o[p.start(1):p.end(1)]) if p.group(1) else None
        secret(CREDENTIAL, key.group(1) if key else (p.group(2) or ""), p, 3)
    for c in compare.finditer(t.m):
        secret(COMPARISON, c.group(1), c, 2)
    for a in auth.finditer(t.m):
        secret(CREDENTIAL, "password", a, 1)
    for s in re.finditer(t.string_pattern, t.m):
        if is_token(t.literal_value(t.o[s.start():s.end()])):
            found.append((TOKEN, s.start(), s.end()))
    return found


#: Bandit's B105-B107 (hardcoded passwords) are left out: their name pattern matches anywhere
#: (``token_url = "https://..."``); the rules here cover the family.
DETECTOR = Detector(
    rules={"literal_credential": "A credential is a string literal in the source.",
           "literal_comparison": "A credential is checked against a string literal in the source.",
           "token_literal": "A string literal has the shape of a live credential (cloud key, API token, "
                            "private key)."},
    on_call=on_call, on_default=on_default, on_assign=on_assign, on_dict_item=on_dict_item, on_compare=on_compare,
    on_constant=on_constant, text_sink=text_sink, on_text_call=on_text_call, on_text=on_text,
)


FAMILY = Family(
    "hardcoded_secret", "CWE-798", "auth", "hard-coded secret", SECRET_TASKS, secret_secure, secret_vulnerable,
    r"_(PASSWORD|KEY|TOKEN|SECRET) = |password=|passwd=|environ|getenv",
    ("the credential is hard-coded in the source", "the secret is committed with the code",
     "anyone with the source has the credentials", "a secret literal lives in the repository"),
    ("the secret comes from the environment, not the source", "credentials are injected at deploy time",
     "no secret is stored in the code", "read the key from the environment"),
    prose=PROSE, detector=DETECTOR,
)
