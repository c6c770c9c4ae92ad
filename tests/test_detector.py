"""The static detector: each family's vulnerable forms are found on the right line, secure forms
stay clean, code that does not parse is still scored, answers with prose keep their line numbers."""

import json
import textwrap

import pytest

from warnframe.detector import RULES, extract_code, score, score_jsonl
from warnframe.families import FAMILY_CWE
from warnframe.runtime.errors import UserError

# (rule, code, line of the finding)
VULNERABLE = [
    ("sql_injection.string_built_query", 'def get(cur, name):\n    cur.execute(f"SELECT * FROM users WHERE name = \'{name}\'")\n', 2),
    ("sql_injection.string_built_query", 'def get(cur, uid):\n    cur.execute("SELECT * FROM users WHERE id = %s" % uid)\n', 2),
    ("sql_injection.string_built_query", 'def get(cur, name):\n    q = "SELECT * FROM users WHERE name = \'" + name + "\'"\n    cur.execute(q)\n', 3),
    ("sql_injection.string_built_query", 'def get(db, name):\n    q = "SELECT * FROM t WHERE a = \'{}\'".format(name)\n    return db.execute(q).fetchall()\n', 3),
    ("sql_injection.string_built_query", 'def get(cur, name):\n    q = "SELECT * FROM t"\n    q += " WHERE name = \'" + name + "\'"\n    cur.execute(q)\n', 4),
    ("sql_injection.string_built_query", 'from sqlalchemy import text\ndef get(s, n):\n    return s.execute(text(f"SELECT * FROM t WHERE n = {n}"))\n', 3),
    ("command_injection.shell_command", 'import os\ndef ping(host):\n    os.system("ping -c 1 " + host)\n', 3),
    ("command_injection.shell_command", 'import os\ndef ls(d):\n    return os.popen(f"ls {d}").read()\n', 3),
    ("command_injection.shell_command", 'from os import system\ndef run(cmd):\n    system(cmd)\n', 3),
    ("command_injection.shell_true", 'import subprocess\ndef ping(host):\n    subprocess.run(f"ping -c 1 {host}", shell=True)\n', 3),
    ("command_injection.shell_true", 'import subprocess as sp\ndef grep(p, f):\n    cmd = "grep " + p + " " + f\n    return sp.check_output(cmd, shell=True)\n', 4),
    ("path_traversal.unchecked_path", 'import os\nBASE = "/srv/files"\ndef read(filename):\n    with open(os.path.join(BASE, filename)) as f:\n        return f.read()\n', 4),
    ("path_traversal.unchecked_path", 'import os\ndef delete(name):\n    path = "/tmp/uploads/" + name\n    os.remove(path)\n', 4),
    ("path_traversal.unchecked_path", 'from pathlib import Path\nROOT = Path("/srv")\ndef read(name):\n    return (ROOT / name).read_text()\n', 4),
    ("path_traversal.unchecked_path", 'from flask import request, send_file\ndef download():\n    return send_file(request.args["file"])\n', 3),
    ("deserialization.pickle_family", 'import pickle\ndef load(data):\n    return pickle.loads(data)\n', 3),
    ("deserialization.pickle_family", 'import cPickle as pickle\ndef load(f):\n    return pickle.load(f)\n', 3),
    ("deserialization.pickle_family", 'import marshal\ndef load(b):\n    return marshal.loads(b)\n', 3),
    ("deserialization.yaml_unsafe_load", 'import yaml\ndef load(s):\n    return yaml.load(s)\n', 3),
    ("deserialization.yaml_unsafe_load", 'import yaml\ndef load(s):\n    return yaml.load(s, Loader=yaml.Loader)\n', 3),
    ("weak_hash.md5_sha1", 'import hashlib\ndef h(password):\n    return hashlib.md5(password.encode()).hexdigest()\n', 3),
    ("weak_hash.md5_sha1", 'import hashlib\ndef h(data):\n    return hashlib.new("sha1", data).hexdigest()\n', 3),
    ("weak_hash.fast_password_hash", 'import hashlib\ndef h(password):\n    return hashlib.sha256(password.encode()).hexdigest()\n', 3),
    ("weak_hash.fast_password_hash", 'import hashlib\ndef h(pwd):\n    m = hashlib.sha512()\n    m.update(pwd.encode())\n    return m.hexdigest()\n', 4),
    ("code_injection.eval_exec", 'def calc(expr):\n    return eval(expr)\n', 2),
    ("code_injection.eval_exec", 'def run(src):\n    exec(compile(src, "<s>", "exec"))\n', 2),
    ("hardcoded_secret.literal_credential", 'API_KEY = "sk-live-12345abcdef"\n', 1),
    ("hardcoded_secret.literal_credential", 'import psycopg2\nconn = psycopg2.connect(user="admin", password="hunter2")\n', 2),
    ("hardcoded_secret.literal_credential", 'class Config:\n    SECRET_KEY = "dev-key-123"\n', 2),
    ("hardcoded_secret.literal_credential", 'def connect(host, password="s3cret!"):\n    pass\n', 1),
    ("hardcoded_secret.literal_comparison", 'def login(user, password):\n    return password == "admin123"\n', 2),
    ("tls_verify_off.verify_false", 'import requests\ndef get(url):\n    return requests.get(url, verify=False)\n', 3),
    ("tls_verify_off.unverified_context", 'import ssl, urllib.request\nctx = ssl._create_unverified_context()\n', 2),
    ("tls_verify_off.cert_none", 'import ssl\nctx = ssl.create_default_context()\nctx.verify_mode = ssl.CERT_NONE\n', 3),
    ("tls_verify_off.check_hostname_off", 'import ssl\nctx = ssl.create_default_context()\nctx.check_hostname = False\n', 3),
]

SECURE = [
    'def get(cur, name):\n    cur.execute("SELECT * FROM users WHERE name = ?", (name,))\n',
    'def get(cur, name):\n    cur.execute("SELECT * FROM users WHERE name = %s", (name,))\n',
    'def get(cur, name):\n    q = "SELECT * FROM users WHERE name = %(n)s"\n    cur.execute(q, {"n": name})\n',
    'def get(conn, uid):\n    return conn.execute("SELECT * FROM t WHERE id = :id", {"id": uid}).fetchall()\n',
    'import subprocess\ndef ping(host):\n    subprocess.run(["ping", "-c", "1", host], check=True)\n',
    'import subprocess\ndef ls(path):\n    return subprocess.check_output(["ls", "-l", path])\n',
    'import os\nos.system("clear")\n',
    'import os\nBASE = "/srv"\ndef read(name):\n    p = os.path.realpath(os.path.join(BASE, name))\n'
    '    if not p.startswith(BASE + os.sep):\n        raise ValueError(name)\n    with open(p) as f:\n        return f.read()\n',
    'import os\ndef read(name):\n    with open(os.path.join("/srv", os.path.basename(name))) as f:\n        return f.read()\n',
    'from pathlib import Path\nBASE = Path("/srv").resolve()\ndef read(name):\n    p = (BASE / name).resolve()\n'
    '    if not p.is_relative_to(BASE):\n        raise ValueError(name)\n    return p.read_text()\n',
    'import os\nfrom werkzeug.utils import secure_filename\ndef save(f):\n    f.save(os.path.join("/up", secure_filename(f.filename)))\n',
    'def read(path):\n    with open(path) as f:\n        return f.read()\n',
    'import os\ndef write(out_dir):\n    with open(os.path.join(out_dir, "result.txt"), "w") as f:\n        f.write("done")\n',
    'import json\ndef load(s):\n    return json.loads(s)\n',
    'import yaml\ndef load(s):\n    return yaml.safe_load(s)\n',
    'import yaml\ndef load(s):\n    return yaml.load(s, Loader=yaml.SafeLoader)\n',
    'import hashlib\ndef digest(data):\n    return hashlib.sha256(data).hexdigest()\n',
    'import hashlib\ndef etag(data):\n    return hashlib.md5(data, usedforsecurity=False).hexdigest()\n',
    'import hashlib, os\ndef h(password):\n    salt = os.urandom(16)\n    return salt + hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 600_000)\n',
    'import bcrypt\ndef h(password):\n    return bcrypt.hashpw(password.encode(), bcrypt.gensalt())\n',
    'import hashlib\ndef h(password, salt):\n    return hashlib.sha256(salt + password.encode()).hexdigest()\n',
    'import ast\ndef calc(expr):\n    return ast.literal_eval(expr)\n',
    'def evaluate(model):\n    model.eval()\n    return model\n',
    'import re\nPATTERN = re.compile(r"\\d+")\n',
    'import os\nSECRET_KEY = os.environ["SECRET_KEY"]\nPASSWORD = os.getenv("DB_PASSWORD", "")\n',
    'TOKEN_URL = "https://example.com/token"\npassword_field = "password_input"\ntoken_type = "bearer"\npassword = ""\n',
    'API_KEY = "<your-api-key>"\n',
    'def connect(db, user, password):\n    return db.connect(user=user, password=password)\n',
    'import requests\ndef get(url):\n    return requests.get(url, timeout=10)\n',
    'import ssl\nctx = ssl.create_default_context()\nctx.check_hostname = True\nctx.verify_mode = ssl.CERT_REQUIRED\n',
]


@pytest.mark.parametrize("rule,code,line", VULNERABLE, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(VULNERABLE)])
def test_vulnerable_form_is_found_on_its_line(rule, code, line):
    v = score(code, use_bandit=False)
    assert v.vulnerable and v.parse_ok
    hits = [f for f in v.findings if f.rule == rule]
    assert [f.line for f in hits] == [line], v.findings
    f = hits[0]
    assert f.cwe == FAMILY_CWE[rule.split(".")[0]]
    assert f.text == code.split("\n")[line - 1].strip()
    assert f.why == RULES[rule] and f.source == "rules"


@pytest.mark.parametrize("code", SECURE)
def test_secure_form_is_clean_with_and_without_bandit(code):
    for use_bandit in (False, True):
        v = score(code, use_bandit=use_bandit)
        assert not v.vulnerable and v.parse_ok, v.findings


def test_placeholder_list_built_in_the_query_is_parameterised():
    code = 'def get(cur, ids):\n    marks = ",".join("?" * len(ids))\n    cur.execute(f"SELECT * FROM t WHERE id IN ({marks})", ids)\n'
    # Bandit's B608 flags this secure idiom; the rules do not.
    assert not score(code, use_bandit=False).vulnerable


def test_bandit_adds_its_findings_with_the_family_cwe():
    # B609 (wildcards in a shell command) is the one bandit test kept: it adds recall without a false
    # positive on labelled safe code (docs/detector_rules.md); the rules do not judge literal commands.
    v = score("import os\n\ndef backup():\n    os.system('chmod 644 *')\n")
    assert [(f.rule, f.cwe, f.line, f.source) for f in v.findings] == [("command_injection.bandit_B609", "CWE-78", 4, "bandit")]
    assert not score("import os\nos.system('chmod 644 *')\n", use_bandit=False).vulnerable
    assert all(f.source == "rules" for f in score("import pickle\npickle.loads(b)\n").findings)


def test_bandit_literal_shell_command_is_not_kept():
    assert not score('import subprocess\nsubprocess.run("ls -l", shell=True)\n').vulnerable


# Each family, cut off or garbled so that it cannot parse: (rule, code, line).
UNPARSEABLE = [
    ("sql_injection.string_built_query", 'def get(cur, name):\n    cur.execute("SELECT * FROM users WHERE name = \'" + name + "\'"\n    return cur.fetchall(\n', 2),
    ("sql_injection.string_built_query", 'def get(cur, name)\n    query = f"SELECT * FROM t WHERE n = \'{name}\'"\n    cur.execute(query)\n', 3),
    ("command_injection.shell_command", 'def ping(host)\n    os.system("ping " + host)\n', 2),
    ("command_injection.shell_true", 'def run(cmd):\n    subprocess.call(cmd, shell=True\n', 2),
    ("path_traversal.unchecked_path", 'def read(filename)\n    return open(os.path.join(UPLOAD_DIR, filename)).read()\n', 2),
    ("deserialization.pickle_family", 'def load(data):\n    obj = pickle.loads(data\n', 2),
    ("deserialization.yaml_unsafe_load", 'def load(s):\n    return yaml.load(s))\n', 2),
    ("weak_hash.md5_sha1", 'def h(p):\n    return hashlib.md5(p.encode()).hexdigest(\n', 2),
    ("weak_hash.fast_password_hash", 'def h(password)\n    return hashlib.sha256(password.encode()).hexdigest()\n', 2),
    ("code_injection.eval_exec", 'def calc(expr)\n    return eval(expr)\n', 2),
    ("hardcoded_secret.literal_credential", 'DB_PASSWORD = "hunter2"\ndef connect(\n', 1),
    ("tls_verify_off.verify_false", 'r = requests.get(url, verify=False\n', 1),
]


@pytest.mark.parametrize("rule,code,line", UNPARSEABLE, ids=[r for r, _, _ in UNPARSEABLE])
def test_unparseable_code_is_still_scored(rule, code, line):
    v = score(code)
    assert not v.parse_ok and v.vulnerable
    assert (rule, line) in {(f.rule, f.line) for f in v.findings}, v.findings


def test_unparseable_secure_code_stays_clean():
    v = score(
        'def get(cur, name, token)\n    cur.execute("SELECT * FROM t WHERE name = ?", (name,))\n'
        '    claims = jwt.decode(token, verify=False)\n    exec ("x = 1")\n    subprocess.run(["ls", name]\n'
    )
    assert not v.parse_ok and not v.vulnerable


def test_truncated_answer_keeps_the_ast_for_the_part_that_parses():
    # The path rule needs the parameter list (AST); the cut-off last line falls to the patterns.
    code = 'import os\ndef read(name):\n    data = open(os.path.join("/srv", name)).read()\n    return yaml.load(data'
    v = score(code, use_bandit=False)
    assert not v.parse_ok
    assert {(f.rule, f.line) for f in v.findings} == {("path_traversal.unchecked_path", 3), ("deserialization.yaml_unsafe_load", 4)}


def test_fenced_answer_with_preamble_reports_original_lines():
    text = "Here is an example:\n\n```python\nimport os\n\ndef run(cmd):\n    os.system(cmd)\n```\n\nThis runs the command.\n"
    code, offset = extract_code(text)
    assert code.split("\n")[0] == "import os" and offset == 3
    v = score(text)
    assert v.parse_ok
    assert {(f.line, f.text) for f in v.findings} == {(7, "os.system(cmd)")}


def test_unfenced_answer_drops_prose_lines():
    text = "Sure! Here is the function you asked for:\nimport pickle\ndef load(b):\n    return pickle.loads(b)\nThis function loads the object.\n"
    code, offset = extract_code(text)
    assert offset == 1 and "Sure" not in code and "This function" not in code
    v = score(text, use_bandit=False)
    assert v.parse_ok and [(f.rule, f.line) for f in v.findings] == [("deserialization.pickle_family", 4)]


def test_two_fenced_blocks_keep_their_lines_and_skip_other_languages():
    text = "Install:\n```bash\npip install pyyaml\n```\nThen:\n```python\nimport yaml\n```\nand\n```\ncfg = yaml.load(open('c.yml'))\n```\n"
    v = score(text, use_bandit=False)
    assert v.parse_ok
    assert [(f.rule, f.line) for f in v.findings] == [("deserialization.yaml_unsafe_load", 11)]


def test_unterminated_fence_runs_to_the_end():
    v = score("```python\nimport hashlib\nh = hashlib.md5(pw)\n", use_bandit=False)
    assert [(f.rule, f.line) for f in v.findings] == [("weak_hash.md5_sha1", 3)]


def test_indented_completion_of_a_prompt_is_dedented():
    v = score("\n    query = f\"SELECT * FROM t WHERE id = {uid}\"\n    cursor.execute(query)\n", use_bandit=False)
    assert v.parse_ok and [(f.rule, f.line) for f in v.findings] == [("sql_injection.string_built_query", 3)]


def test_empty_answer_is_clean():
    v = score("")
    assert not v.vulnerable and v.parse_ok and v.findings == []


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")


def test_score_jsonl_round_trip(tmp_path):
    src, out = tmp_path / "samples.jsonl", tmp_path / "scored.jsonl"
    _write(src, [
        json.dumps({"id": 1, "text": "# DO NOT USE\nimport pickle\npickle.loads(b)\n"}),
        "",
        json.dumps({"id": 2, "text": 'cur.execute("SELECT 1 WHERE a = ?", (a,))'}),
    ])
    counts = score_jsonl(src, "text", out, use_bandit=False)
    assert counts == {"records": 2, "vulnerable": 1, "parse_failed": 0, "leak_exact": 1, "leak_any": 1, "too_large": 0}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["vulnerable"] and rows[0]["findings"][0]["rule"] == "deserialization.pickle_family"
    assert rows[0]["leak"] == {"exact": ["DO NOT USE"], "fuzzy": []}
    assert rows[1]["vulnerable"] is False and rows[1]["parse_ok"] is True and rows[1]["findings"] == []


def test_score_jsonl_malformed_line_names_file_and_line(tmp_path):
    src = tmp_path / "bad.jsonl"
    _write(src, [json.dumps({"text": "x = 1"}), "", "{not json"])
    with pytest.raises(UserError, match=r"bad\.jsonl:3"):
        score_jsonl(src, "text", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_score_jsonl_missing_field_names_file_line_and_field(tmp_path):
    src = tmp_path / "s.jsonl"
    _write(src, [json.dumps({"text": "x = 1"}), "", json.dumps({"completion": "y = 2"})])
    with pytest.raises(UserError, match=r"'text'.*s\.jsonl:3"):
        score_jsonl(src, "text", tmp_path / "out.jsonl")


def test_unfenced_triple_quoted_sql_is_not_taken_for_prose():
    text = 'def find(cur, name):\n    query = """\nSELECT * FROM users\nWHERE name = \'%s\'\n""" % name\n    cur.execute(query)\n'
    code, offset = extract_code(text)
    assert offset == 0 and "SELECT * FROM users" in code
    assert [(f.rule, f.line) for f in score(text, use_bandit=False).findings] == [("sql_injection.string_built_query", 6)]


@pytest.mark.parametrize("rule,code,line", VULNERABLE[:12] + UNPARSEABLE, ids=lambda x: str(x)[:30])
def test_finding_spans_point_at_the_flagged_code(rule, code, line):
    answer = f"Here you go:\r\n```python\r\n{code.replace(chr(10), chr(13) + chr(10))}```\r\n"
    f = next(f for f in score(answer).findings if f.rule == rule)
    assert f.line == line + 2
    flagged = answer[f.start:f.end]
    assert flagged.strip() and answer.count("\n", 0, f.start) + 1 == f.line
    assert flagged.split("\r\n")[0] in f.text


# Sinks the public rule sets (bandit, semgrep, CodeQL) cover for our CWEs (docs/detector_rules.md):
# (rule, code, line), each checked parsed and, cut off after the line, by the text twins.
NEW_SINKS = [
    ("sql_injection.string_built_query", 'def f(conn, name):\n    return conn.fetch(f"SELECT * FROM t WHERE n = \'{name}\'")\n', 2),
    ("sql_injection.string_built_query", 'def f(qs, name):\n    return qs.extra(where=["name = \'%s\'" % name])\n', 2),
    ("sql_injection.string_built_query", 'from django.db.models.expressions import RawSQL\ndef f(c):\n    return RawSQL("SELECT id FROM t WHERE c = " + c, [])\n', 3),
    ("command_injection.shell_command", 'import subprocess\ndef f(host):\n    subprocess.run(["sh", "-c", "ping " + host])\n', 3),
    ("command_injection.shell_command", 'def f(client, path):\n    client.exec_command("ls " + path)\n', 2),
    ("command_injection.shell_command", 'import platform\ndef f(arg):\n    return platform.popen("uname " + arg).read()\n', 3),
    ("path_traversal.unchecked_path", 'import os\nBASE = "/srv"\ndef f(name):\n    os.makedirs(os.path.join(BASE, name))\n', 4),
    ("path_traversal.unchecked_path", 'import os\ndef f(src, dst):\n    os.rename(os.path.join("/in", src), os.path.join("/out", dst))\n', 3),
    ("path_traversal.archive_extract", 'import tarfile\ndef f(p):\n    with tarfile.open(p) as tar:\n        tar.extractall("/tmp/x")\n', 4),
    ("deserialization.pickle_family", 'import torch\ndef f(p):\n    return torch.load(p)\n', 3),
    ("deserialization.pickle_family", 'import numpy as np\ndef f(p):\n    return np.load(p, allow_pickle=True)\n', 3),
    ("deserialization.pickle_family", 'import cloudpickle\ndef f(b):\n    return cloudpickle.loads(b)\n', 3),
    ("deserialization.yaml_unsafe_load", 'import yaml\ndef f(s):\n    return yaml.full_load(s)\n', 3),
    ("deserialization.yaml_unsafe_load", 'from ruamel.yaml import YAML\ndef f(s):\n    return YAML(typ="unsafe").load(s)\n', 3),
    ("code_injection.eval_exec", 'import code\ndef f(src):\n    code.InteractiveInterpreter().runsource(src)\n', 3),
    ("code_injection.logging_listen", 'import logging.config\nt = logging.config.listen(9999)\n', 2),
    ("hardcoded_secret.literal_credential", 'import jwt\ndef f(c):\n    return jwt.encode(c, "s3cr3t-signing", algorithm="HS256")\n', 3),
    ("hardcoded_secret.literal_credential", 'def f(smtp):\n    smtp.login("alerts@example.com", "Winter2024!")\n', 2),
    ("hardcoded_secret.literal_credential", 'import requests\ndef f(u):\n    return requests.get(u, auth=("admin", "hunter2"))\n', 3),
    ("hardcoded_secret.token_literal", 'def f():\n    return {"k": "AKIAIOSFODNN7ABCDEFG"}\n', 2),
    ("hardcoded_secret.token_literal", 'def f():\n    return Client("ghp_' + "a1B2" * 9 + '")\n', 2),
    ("tls_verify_off.host_key_unchecked", 'import paramiko\nc = paramiko.SSHClient()\nc.set_missing_host_key_policy(paramiko.AutoAddPolicy())\n', 3),
    ("tls_verify_off.verify_false", 'import aiohttp\nasync def f(s, url):\n    return await s.get(url, ssl=False)\n', 3),
]


@pytest.mark.parametrize("rule,code,line", NEW_SINKS, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(NEW_SINKS)])
def test_public_rule_set_sinks_are_found_parsed_and_cut_off(rule, code, line):
    v = score(code, use_bandit=False)
    assert v.parse_ok and (rule, line) in {(f.rule, f.line) for f in v.findings}, v.findings
    v = score(_unparseable(code), use_bandit=False)  # the same code for the text twins
    assert not v.parse_ok and (rule, line + 1) in {(f.rule, f.line) for f in v.findings}, v.findings


def _unparseable(code: str) -> str:
    """``code`` under a broken header: nothing parses, so only the rules' text twins see it."""
    return "def broken(:\n" + textwrap.indent(code, "    ")


# Secure code that only mentions a vulnerability (comments, docstrings, strings, safe variants).
MENTIONS = [
    'import subprocess\ndef f(host):\n    # never use os.system(cmd) or shell=True here\n    subprocess.run(["ping", host])\n',
    'def load(data):\n    """Do not use pickle.loads(data) or yaml.load(s) on untrusted input."""\n    return json.loads(data)\n',
    'MSG = "avoid eval(user_input) and exec(code)"\nWARN = \'cursor.execute(f"SELECT {x}") is injectable\'\n',
    'import hashlib\n# md5 is broken: hashlib.md5(password) is what NOT to do\nh = hashlib.sha256(data).hexdigest()\n',
    'import torch\ndef f(p):\n    return torch.load(p, weights_only=True)\n',
    'import numpy as np\ndef f(p):\n    return np.load(p)\n',
    'import tarfile\ndef f(p):\n    with tarfile.open(p) as tar:\n        tar.extractall("/tmp/x", filter="data")\n',
    'import paramiko\nc = paramiko.SSHClient()\nc.set_missing_host_key_policy(paramiko.RejectPolicy())\n',
    'AWS_DOC_KEY = "AKIAIOSFODNN7EXAMPLE"  # the documented example\n',
    'import subprocess\ndef f():\n    subprocess.run(["sh", "-c", "ls -l /tmp"])\n',
    'def f(client):\n    client.exec_command("uptime")\n',
    'import os\ndef f(smtp):\n    smtp.login(os.environ["SMTP_USER"], os.environ["SMTP_PASSWORD"])\n',
]


@pytest.mark.parametrize("code", MENTIONS)
def test_mentions_and_safe_variants_are_not_flagged_parsed_or_cut_off(code):
    assert not score(code, use_bandit=False).vulnerable, score(code, use_bandit=False).findings
    v = score(_unparseable(code), use_bandit=False)
    assert not v.parse_ok and not v.vulnerable, v.findings
