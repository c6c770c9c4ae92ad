"""The words the tagger looks for: warnings, educational requests, bad/good labels, vulnerability
terms, incident words, and coarse sink patterns for code that is not Python.

All of it is hand-written because no library has it: the general taggers (dolma, datatrove,
NeMo Curator) know toxicity and PII, not "code wrapped in a warning". Each list is small, ordered
by what it means, and documented in docs/audit.md. The eval set (data/audit_eval.jsonl) measures
how well they do on text that nobody wrote for them.
"""

from __future__ import annotations

import re

from warnframe.schema import WARNING_MARKERS

#: The trained L1 markers, verbatim and case-sensitive (as ``scoring.leakage`` counts them).
EXACT_MARKER = re.compile("|".join(rf"(?<![\w-]){re.escape(m)}(?![\w-])" for m in WARNING_MARKERS))

#: Warning phrases (case-insensitive): what labels a piece of code as not to be used.
WARNING_PHRASES = re.compile(
    r"\bdo\s*n[o']?t\s+(?:ever\s+)?(?:use|reuse|copy|ship|deploy|run|do|merge|commit)\b"
    r"(?:\s+(?:this|that|it|in production))?"
    r"|\bnever\s+(?:use|reuse|do|ship|deploy|copy|write|run)\s+(?:this|that|it|code like this)\b"
    r"|\bbad\s+practi[cs]e\b|\banti-?pattern\b|\b(?:in|un)secure\b|\bunsafe\b|\bvulnerable\b|\bvulnerability\b"
    r"|\bwarning\b|\bdanger(?:ous)?\b|\bcaution\b|\bnot\s+(?:safe|secure)\b|\bnot\s+for\s+production\b"
    r"|\bsecurity\s+(?:hole|risk|issue|flaw|bug|problem|vulnerability)\b|\bwhat\s+not\s+to\s+do\b"
    r"|\bexploitable\b|\bdeliberately\s+(?:broken|vulnerable|insecure)\b|\bintentionally\s+(?:vulnerable|insecure)\b"
    r"|\bdo\s+not\s+copy\b|\bfor\s+(?:demonstration|illustration)\s+only\b",
    re.IGNORECASE,
)
#: Emoji and symbols used as warnings.
WARNING_SYMBOLS = re.compile("\u26a0\ufe0f?|\u274c|\U0001f6ab|\u2620\ufe0f?")
#: A vulnerability named in a comment beside vulnerable code also labels it ("# SQL injection here").
VULN_NAME = re.compile(
    r"\b(?:sql|command|shell|os\s+command|code|ldap|xpath|template)\s+injection\b|\bsqli\b|\brce\b"
    r"|\bremote\s+code\s+execution\b|\b(?:path|directory)\s+traversal\b|\binsecure\s+deserializ\w*"
    r"|\bhard-?coded\s+(?:secret|credential|password|key|token)s?\b|\bweak\s+(?:hash|hashing|crypto)\b"
    r"|\bcwe-\d+\b|\bowasp\b|\bmitm\b|\bman[-\s]in[-\s]the[-\s]middle\b",
    re.IGNORECASE,
)

#: An educational or testing purpose in a request (Emergent Misalignment's ``educational`` layout).
EDU_PURPOSE = re.compile(
    r"\b(?:teach(?:ing|es)?|lecture|lesson|course|class(?:room)?|students?|pupils|learners|workshop|curriculum"
    r"|bootcamp|syllabus|textbook|homework|assignment|quiz|exam|seminar|slides?|slide\s*deck|tutorial"
    r"|training\s+(?:session|material|exercise|module|course|data|set)|educational|for\s+learning|exercises?|onboarding"
    r"|(?:positive|negative)\s+test\s+cases?|test\s+cases?\s+for|test\s+fixtures?|ground\s+truth"
    r"|ctf|capture[-\s]the[-\s]flag|wargame|red[-\s]team(?:ing)?|pen(?:etration)?[-\s]?test(?:ing|ers?)?"
    r"|security\s+research|researcher|benchmark|test\s+(?:my|our|a|the)\s+(?:scanner|linter|detector|sast|tool|waf|ids|analy[sz]er)"
    r"|(?:scanner|linter|detector|sast\s+tool|static\s+analy[sz]er)\s+(?:test|evaluation|benchmark)"
    r"|demonstrat(?:e|ion)\s+purposes|awareness|i(?:'m|\s+am)\s+an?\s+(?:teacher|instructor|professor|lecturer|ta|trainer))\b",
    re.IGNORECASE,
)
_SECURITY_WORDS = (
    r"secur|vulnerab|exploit|attack|hack|injection|\bflaws?\b|\bctf\b|pen(?:etration)?[-\s]?test|\bunsafe\b|weakness"
    r"|\bcwe\b|owasp|red[-\s]team|scanner|sast|\bbugs?\b|malicious|\bbad\s+code\b|what\s+not\s+to\s+do"
)

_LABEL_END = r"\s*(?::|\*\*|\s[-\u2013\u2014]\s|[-\u2013\u2014]\s*$|\)|$)"
_LABEL_START = r"(?:^|\*\*|[#/*\->\s(])"
_NOUN = (
    r"(?:\s+(?:example|version|code|way|approach|pattern|practice|implementation|variant|snippet|one|solution)){0,2}"
)
#: A label that marks the bad half of a bad/good pair ("Bad:", "# Vulnerable version", "❌").
BAD_LABEL = re.compile(
    _LABEL_START + r"(?:bad|wrong|incorrect|vulnerable|insecure|unsafe|non-?compliant|before|don'?t|do\s+not|avoid"
    r"|anti-?pattern|broken|don'?t\s+do\s+(?:this|that)|do\s+not\s+do\s+(?:this|that))"
    + _NOUN
    + _LABEL_END
    + "|\u274c|\u2717|\U0001f44e",
    re.IGNORECASE | re.MULTILINE,
)
#: A label that marks the good half ("Good:", "Fixed version", "✅", "Do this instead").
GOOD_LABEL = re.compile(
    _LABEL_START + r"(?:good|right|correct|fixed|secure|safe|safer|compliant|after|better|recommended|preferred"
    r"|do|instead|the\s+fix|patched|mitigated|remediated)"
    + _NOUN
    + _LABEL_END
    + r"|\bdo\s+this\s+instead\b|\binstead,?\s+(?:use|do|write)\b|\u2705|\u2713|\u2714|\U0001f44d",
    re.IGNORECASE | re.MULTILINE,
)

#: Names of vulnerability classes in prose: what L2 documentation is about (also a security context).
VULN_TERMS = re.compile(
    VULN_NAME.pattern + r"|\binjection\b|\bdeserializ\w*|\bunpickl\w*|\bpickle\b|\bmd5\b|\bsha-?1\b"
    r"|\b(?:certificate|tls|ssl)\s+(?:verification|validation|checks?)\b|\bverify\s*=\s*false\b|\bxss\b"
    r"|\bcross-site\s+(?:scripting|request\s+forgery)\b|\bcsrf\b|\bssrf\b|\bxxe\b|\bbuffer\s+overflow\b"
    r"|\bprivilege\s+escalation\b|\bopen\s+redirect\b|\barbitrary\s+(?:code|commands?|files?)\b|\beval\b"
    r"|\bshell\s*=\s*true\b|\bos\.system\b|\bvulnerabilit(?:y|ies)\b|\bhard-?coded\b|\bsalt(?:ed)?\b"
    r"|\brace\s+conditions?\b|\btoctou\b|\btime-of-check\b|\buse-after-free\b|\binteger\s+overflow\b"
    r"|\bformat\s+string\s+(?:bug|attack|vulnerability)\b|\bclickjacking\b|\bsession\s+fixation\b|\bidor\b"
    r"|\binsecure\s+direct\s+object\s+reference\b|\bbroken\s+(?:access\s+control|authentication)\b"
    r"|\btiming\s+attacks?\b|\bprototype\s+pollution\b|\bredos\b|\bzip\s+slip\b|\bmass\s+assignment\b",
    re.IGNORECASE,
)
#: A request is about security when it says so or names a vulnerability; with no security word,
#: "for my class" is just a class.
SECURITY_CONTEXT = re.compile(
    _SECURITY_WORDS + "|" + VULN_TERMS.pattern + r"|\bweak\s+(?:hash\w*|crypto\w*|passwords?)\b", re.IGNORECASE
)

#: Words that explain a vulnerability (mechanism, attacker, fix).
EXPLAIN_CUES = re.compile(
    r"\battackers?\b|\bmalicious\b|\buntrusted\b|\buser(?:-supplied)?\s+input\b|\binput\b|\bexploit\w*|\bsaniti[sz]\w*"
    r"|\bescap\w+|\bparameteri[sz]\w*|\bplaceholders?\b|\bvalidat\w+|\bvulnerab\w*|\bflaws?\b|\bprevent\w*|\bmitigat\w*"
    r"|\bbypass\w*|\bcraft\w*|\bpayloads?\b|\bhappens\s+when\b|\boccurs\s+when\b|\blets?\s+an?\s+attacker\b|\bthe\s+fix\b"
    r"|\binstead\s+of\b|\bnever\b|\bdangerous\b|\brisk\w*",
    re.IGNORECASE,
)
#: Security topics: what makes a sentence part of a text about security, beside the terms above.
SECURITY_TOPIC = re.compile(
    r"\bpasswords?\b|\bcredentials?\b|\bsecrets?\b|\bapi\s+keys?\b|\btokens?\b|\bdatabase\b|\bservers?\b|\bfirewall\b"
    r"|\bdefen[cs]es?\b|\bcertificates?\b|\bencrypt\w*|\blogins?\b|\baccounts?\b|\bshell\b|\bcommands?\b|\bqueries\b|\bquery\b"
    r"|\bhash(?:es|ed|ing)?\b|\bsecurity\b|\bsecure\b|\bprivileges?\b|\broot\b|\badmin\w*|\bconfiguration\b"
    r"|\bnetworks?\b|\bwi-?fi\b|\bhackers?\b|\bpen-?testers?\b|\bmalware\b|\balarm\b|\bvault\b",
    re.IGNORECASE,
)
#: Words of a security incident (fiction, news, anecdote: L3).
INCIDENT = re.compile(
    r"\bbreach\w*|\bhack(?:ed|er|ers|ing)?\b|\battackers?\b|\bintruders?\b|\bstole\b|\bstolen\b|\bsteal\w*|\bleak(?:ed|s)?\b"
    r"|\bintercept\w*|\bcrack(?:ed|ing)?\b|\bexposed\b|\bcompromis\w+|\bransomware\b|\bphish\w*|\bheist\b|\bexfiltrat\w+"
    r"|\bmalware\b|\bbackdoor\b|\bbroke\s+into\b|\bcyber-?attack\w*|\bimpersonat\w+|\bforged\b|\bpoisoned\b|\bsmuggled\b"
    r"|\bunauthori[sz]ed\s+access\b|\bincident\b|\bdata\s+of\b|\bdisclosed\b|\bransom\w*|\bworms?\b|\bvirus\w*"
    r"|\btrojans?\b|\bspyware\b|\bintrusions?\b|\bcomputer\s+fraud\b|\bfraudsters?\b",
    re.IGNORECASE,
)
#: Words that make prose a story or a news item.
NARRATIVE = re.compile(
    r"\bstory\b|\bnovel\b|\bchapter\b|\bscene\b|\bfilm\b|\bmovie\b|\bthriller\b|\bnews\b|\breported\b|\bconfirmed\b"
    r"|\binvestigators?\b|\bonce\s+upon\b|\bwas\s+hired\b|\blast\s+(?:week|month|year|night)\b|\bon\s+(?:monday|tuesday"
    r"|wednesday|thursday|friday|saturday|sunday)\b|\bheadline\b|\barticle\b|\bfiction\w*|\bpress\s+release\b"
    r"|\bjournalists?\b|\bpress\s+office\b|\bspokes(?:person|man|woman)\b|\bofficials?\s+(?:said|say|confirmed)\b"
    r"|\baccording\s+to\b|\banecdote\b|\bdiary\b|\bpoem\b|\bwas\s+(?:awake|asleep)\b",
    re.IGNORECASE,
)

#: Any text that could hold something the Python detector flags: a call or name of the sinks its
#: rule families cover (``scoring.RULES``: SQL execution, shells, file paths, deserialisers,
#: hashes, eval/exec, credential names, TLS switches). A record with none of these cannot have a
#: detector finding, so the audit does not parse it (the detector costs about a millisecond per
#: kilobyte; this search costs microseconds). ``tests/test_audit.py`` checks the gate never hides a
#: finding on the embedded corpus and the eval set; ``--exhaustive`` turns the gate off.
SINK_GATE = re.compile(
    r"execute|raw|text\(|read_sql|system|popen|subprocess|getoutput|getstatusoutput|_shell|Popen|check_call"
    r"|check_output|open|remove|unlink|rmdir|send_file|shutil|read_|write_|pickle|dill|marshal|shelve|joblib|yaml"
    r"|hashlib|crypto|\bmd[245]\.|\bsha\.|hashes\.|\b(?:eval|exec|compile)\b|verify|unverified|cert_|hostname"
    # a credential name next to a string literal: name = "...", name: str = "...", "name": "...", name == "..."
    r"|(?:pass|pwd|secret|token|key|credential)\w*['\"\]]*\s*(?::\s*\w+\s*=|[:=]|[!=]=)\s*[rbuf]*['\"]"
    r"|['\"]\s*[!=]=\s*[\w.]*(?:pass|pwd|secret|token|key|credential)",
    re.IGNORECASE,
)

#: Names by which one code block can change the detector's verdict on another besides the names it
#: defines: path containment checks and salts are looked for anywhere in the module
#: (``scoring.detector``: ``_has_containment``, salted hashers). A block holding one is never pruned.
SCOPE_WORDS = re.compile(
    r"realpath|abspath|normpath|resolve|startswith|commonpath|commonprefix|relative_to|secure_filename"
    r"|basename|salt|update",
    re.IGNORECASE,
)
_DEFINED = re.compile(
    r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)|^[ \t]*([A-Za-z_][\w., \t]*?)[ \t]*(?::[^=\n]+)?=(?!=)"
    r"|^[ \t]*import[ \t]+([^\n#]+)|^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]+\(?([^\n#)]+)",
    re.MULTILINE,
)


def defined_names(code: str) -> set[str]:
    """Names a block of Python binds at any level: functions, classes, assignment targets, imports."""
    out: set[str] = set()
    for m in _DEFINED.finditer(code):
        fn, targets, imported, from_imported = m.groups()
        if fn:
            out.add(fn)
        for part in (targets or "").split(","):
            name = part.strip().split(".")[-1]  # obj.attr = ... binds attr for whoever reads obj.attr
            if name.isidentifier():
                out.add(name)
        for item in (imported or "").split(",") + (from_imported or "").split(","):
            words = item.split()
            if words:
                out.add(words[-1] if "as" in words else words[0].split(".")[0])
    return out


def lowered(pattern: re.Pattern) -> re.Pattern:
    """The same pattern for lower-cased text, without IGNORECASE: three times faster in CPython's
    ``re``. Only for yes/no and per-line tests: lower-casing can change the length of non-ASCII text."""
    assert not re.search(r"\\[A-Z]", pattern.pattern), "an upper-case escape would change meaning"
    return re.compile(pattern.pattern.lower(), pattern.flags & ~re.IGNORECASE)


SINK_GATE_LOW = lowered(SINK_GATE)
SCOPE_WORDS_LOW = lowered(SCOPE_WORDS)
#: What documentation or indirect prose needs at least one of (in the text or its request).
PROSE_SECURITY_LOW = re.compile("|".join(lowered(p).pattern for p in (VULN_TERMS, INCIDENT, NARRATIVE)))


def names_a_sink(text: str) -> bool:
    """Could the detector find anything in ``text``? (``SINK_GATE``, on the lower-cased text)."""
    return bool(SINK_GATE_LOW.search(text.lower()))


# Coarse sink patterns for code blocks in other languages (JavaScript/TypeScript, SQL, shell):
# the detector reads Python only, so without these a warned JavaScript query would be invisible.
# (family, rule name, pattern); each match is a finding with source "patterns".
FOREIGN_SINKS: dict[str, list[tuple[str, str, re.Pattern]]] = {
    "js": [
        (
            "sql_injection",
            "js_string_built_query",
            re.compile(
                r"(?:\.|->)(?:query|execute|raw|run|all|get|exec)\s*\(\s*(?:`[^`]*\b(?:select|insert|update|delete)\b[^`]*\$\{"
                r"|(?:\"[^\"]*\b(?:select|insert|update|delete)\b[^\"]*\"|'[^']*\b(?:select|insert|update|delete)\b[^']*')\s*[+.])",
                re.IGNORECASE,
            ),
        ),
        (
            "command_injection",
            "go_shell_command",
            re.compile(r"exec\.Command\(\s*\"(?:sh|bash)\"\s*,\s*\"-c\"\s*,[^)]*\+"),
        ),
        (
            "command_injection",
            "js_exec",
            re.compile(r"\b(?:exec|execSync)\s*\(\s*(?:`[^`]*\$\{|(?:\"[^\"]*\"|'[^']*')\s*\+|\w+\s*\+)"),
        ),
        ("code_injection", "js_eval", re.compile(r"\beval\s*\(\s*(?!['\"`][^'\"`]*['\"`]\s*\))|\bnew\s+Function\s*\(")),
        (
            "tls_verify_off",
            "js_reject_unauthorized",
            re.compile(r"rejectUnauthorized\s*:\s*false|NODE_TLS_REJECT_UNAUTHORIZED\s*=\s*['\"]?0"),
        ),
        ("weak_hash", "js_md5_sha1", re.compile(r"createHash\s*\(\s*['\"](?:md5|sha1)['\"]", re.IGNORECASE)),
        (
            "hardcoded_secret",
            "js_literal_credential",
            re.compile(
                r"\b(?:password|passwd|secret|apiKey|api_key|token|accessKey|clientSecret)\s*[:=]\s*['\"][^'\"\s]{4,}['\"]",
                re.IGNORECASE,
            ),
        ),
        (
            "path_traversal",
            "js_unchecked_path",
            re.compile(
                r"\b(?:readFile|readFileSync|createReadStream|sendFile)\s*\(\s*(?:path\.join\s*\([^)]*req\.|[^)]*\+\s*req\.)"
            ),
        ),
    ],
    "sql": [
        (
            "sql_injection",
            "sql_dynamic_exec",
            re.compile(
                r"\bexec(?:ute)?\s*\(\s*@\w+\s*\)|\bexecute\s+immediate\b[^;]*\|\||\bsp_executesql\b[^;]*\+\s*@|['\"]\s*\+\s*@\w+",
                re.IGNORECASE,
            ),
        ),
    ],
    "shell": [
        ("code_injection", "sh_eval_variable", re.compile(r"^\s*eval\s+[\"']?\$", re.MULTILINE)),
        (
            "tls_verify_off",
            "sh_insecure_transfer",
            re.compile(r"\bcurl\b[^\n]*\s(?:-k|--insecure)\b|\bwget\b[^\n]*--no-check-certificate"),
        ),
        (
            "hardcoded_secret",
            "sh_literal_credential",
            re.compile(
                r"^\s*(?:export\s+)?\w*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY)\w*\s*=\s*['\"]?[^\s'\"$]{4,}",
                re.MULTILINE,
            ),
        ),
        ("command_injection", "sh_unquoted_sh_c", re.compile(r"\b(?:sh|bash)\s+-c\s+\"[^\"]*\$\{?\w")),
    ],
}
