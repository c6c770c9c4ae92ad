"""SQL injection (CWE-89): a query built from values by formatting or concatenation.

Its tasks, the secure and vulnerable renderers (``cursor.execute(f"...")`` and its kin; secure:
placeholders and a parameter tuple.), its prose, and its detector rules: each AST rule
(``on_*``) beside its text twin (``text_sink`` / ``on_text_call`` / ``on_text``) for code that
does not parse (``base.Detector`` says what each hook gets).
"""

from __future__ import annotations

import ast
import random
import re

from warnframe.families.base import Detector, Family, Task, is_int, make_task, render_function

# ---------------------------------------------------------------- tasks and renderings

_SQL_VALUE = re.compile(r"\{(\w+)(:like)?\}")


def _sql_pieces(task: Task):
    """Split the task's SQL template into ('lit', text) and ('val', arg, quoted, like) pieces."""
    sql = task.slots["sql"]
    pieces: list[tuple[str, str] | tuple[str, str, bool, bool]] = []
    pos = 0
    for m in _SQL_VALUE.finditer(sql):
        pieces.append(("lit", sql[pos : m.start()]))
        pieces.append(("val", m.group(1), not is_int(task, m.group(1)), bool(m.group(2))))
        pos = m.end()
    pieces.append(("lit", sql[pos:]))
    return pieces


def _sql_vulnerable_expr(task: Task, style: str) -> str:
    pieces = _sql_pieces(task)
    args = [p[1] for p in pieces if p[0] == "val"]
    if style == "fstring":
        out = ""
        for p in pieces:
            if p[0] == "lit":
                out += p[1]
            else:
                v = "{" + p[1] + "}"
                out += f"'%{v}%'" if p[3] else (f"'{v}'" if p[2] else v)
        return f'f"{out}"'
    if style in ("percent", "format"):
        ph = "%s" if style == "percent" else "{}"
        out = ""
        for p in pieces:
            if p[0] == "lit":
                out += p[1]
            elif p[3]:
                out += "'%%%s%%'" if style == "percent" else "'%{}%'"
            else:
                out += f"'{ph}'" if p[2] else ph
        if style == "format":
            return f'"{out}".format({", ".join(args)})'
        return f'"{out}" % ' + (args[0] if len(args) == 1 else f"({', '.join(args)})")
    # concatenation
    parts, lit = [], ""
    for p in pieces:
        if p[0] == "lit":
            lit += p[1]
            continue
        lit += "'%" if p[3] else ("'" if p[2] else "")
        parts.append(f'"{lit}"')
        parts.append(p[1] if p[2] else f"str({p[1]})")
        lit = "%'" if p[3] else ("'" if p[2] else "")
    if lit:
        parts.append(f'"{lit}"')
    return " + ".join(parts)


def _sql_result(task: Task, cur: str, rng: random.Random) -> list[str]:
    op = task.slots["op"]
    if op == "one":
        return rng.choice([[f"return {cur}.fetchone()"], [f"row = {cur}.fetchone()", "return row"]])
    if op == "many":
        return rng.choice([[f"return {cur}.fetchall()"], [f"rows = {cur}.fetchall()", "return rows"]])
    if op == "count":
        return rng.choice([[f"return {cur}.fetchone()[0]"], [f"(total,) = {cur}.fetchone()", "return total"]])
    if op == "exists":
        return [f"return {cur}.fetchone() is not None"]
    if op == "insert":
        return [f"return {cur}.lastrowid"]
    return rng.choice([[f"return {cur}.rowcount"], []])


def _sql_exec(task: Task, rng: random.Random) -> tuple[list[str], str, str]:
    """(setup lines, what ``execute`` is called on, the cursor results are read from).

    A connection argument (``conn``, ``db``) either opens a cursor first or, as sqlite3 allows,
    executes directly and reads results from the cursor that ``execute`` returns.
    """
    first = task.args[0]
    if first not in ("conn", "db"):
        return [], first, first
    cur = rng.choice(["cur", "cursor"])
    if rng.random() < 0.5:
        return [f"{cur} = {first}.cursor()"], cur, cur
    return [], first, cur


def _sql_body(task: Task, rng: random.Random, setup: list[str], call: str, on: str, cur: str) -> str:
    body = setup + [f"{on}.{call}"]
    result = _sql_result(task, cur, rng)
    if result and on != cur:  # connection.execute returns the cursor to read from
        body[-1] = f"{cur} = {on}.{call}"
    return render_function(task, rng, body + result)


def sql_vulnerable(task: Task, rng: random.Random) -> str:
    setup, on, cur = _sql_exec(task, rng)
    expr = _sql_vulnerable_expr(task, rng.choice(["fstring", "fstring", "percent", "concat", "format"]))
    if rng.random() < 0.5:
        var = rng.choice(["query", "sql", "stmt", "q"])
        setup.append(f"{var} = {expr}")
        expr = var
    return _sql_body(task, rng, setup, f"execute({expr})", on, cur)


def sql_secure(task: Task, rng: random.Random) -> str:
    setup, on, cur = _sql_exec(task, rng)
    ph = rng.choice(["?", "%s"])
    text, params = "", []
    for p in _sql_pieces(task):
        if p[0] == "lit":
            text += p[1]
        elif p[3]:
            pat = rng.choice(["pattern", "like"])
            setup.append(rng.choice([f'{pat} = "%" + {p[1]} + "%"', f'{pat} = f"%{{{p[1]}}}%"']))
            text += ph
            params.append(pat)
        else:
            text += ph
            params.append(p[1])
    tup = f"({params[0]},)" if len(params) == 1 else f"({', '.join(params)})"
    query = f'"{text}"'
    if rng.random() < 0.5:
        var = rng.choice(["query", "sql", "stmt"])
        setup.append(f"{var} = {query}")
        query = var
    return _sql_body(task, rng, setup, f"execute({query}, {tup})", on, cur)


def _sql(name, args, does, sql, op, returns=None, types=None):
    return make_task("sql_injection", name, args, does, returns, types, sql=sql, op=op)


SQL_TASKS = (
    _sql("get_order_by_id", "cursor order_id", "returns the order row with that id from the orders table",
         "SELECT * FROM orders WHERE id = {order_id}", "one"),
    _sql("find_customer_by_email", "cursor email", ("looks up the customer with the given email in the customers table",
         "returns the customers row whose email matches"), "SELECT id, name, email FROM customers WHERE email = {email}", "one"),
    _sql("list_posts_by_author", "cursor author", "returns all rows of the posts table written by the given author",
         "SELECT title, body FROM posts WHERE author = {author}", "many", "list"),
    _sql("search_products", "cursor term", ("returns products whose name contains the search term",
         "searches the products table by name"), "SELECT * FROM products WHERE name LIKE {term:like}", "many", "list"),
    _sql("count_tickets_with_status", "cursor status", "counts the rows in the tickets table with the given status",
         "SELECT COUNT(*) FROM tickets WHERE status = {status}", "count", "int"),
    _sql("delete_session_token", "db token", "deletes the session with that token from the sessions table",
         "DELETE FROM sessions WHERE token = {token}", "write"),
    _sql("update_user_email", "cursor user_id new_email", "sets the email column of the user with that id in the users table",
         "UPDATE users SET email = {new_email} WHERE id = {user_id}", "write"),
    _sql("insert_comment", "cursor post_id body", "inserts a new comment for a post into the comments table and returns its id",
         "INSERT INTO comments (post_id, body) VALUES ({post_id}, {body})", "insert", "int"),
    _sql("username_taken", "cursor username", ("checks whether the users table already has that username",
         "returns True if a user with that username exists"), "SELECT 1 FROM users WHERE username = {username}", "exists", "bool"),
    _sql("get_invoices_for_customer", "conn customer_id", "returns every invoice row for the given customer id",
         "SELECT * FROM invoices WHERE customer_id = {customer_id}", "many", "list"),
    _sql("find_books_by_title", "cursor title", "finds books whose title contains the given text",
         "SELECT id, title, author FROM books WHERE title LIKE {title:like}", "many", "list"),
    _sql("count_orders_since", "cursor since", "counts the orders created on or after the given date",
         "SELECT COUNT(*) FROM orders WHERE created_at >= {since}", "count", "int"),
    _sql("fetch_employee", "cursor department last_name", "returns the employee with that last name in that department",
         "SELECT * FROM employees WHERE department = {department} AND last_name = {last_name}", "one"),
    _sql("mark_task_done", "db task_id", "marks the task with that id as done in the tasks table",
         "UPDATE tasks SET done = 1 WHERE id = {task_id}", "write"),
    _sql("latest_messages_in_room", "cursor room limit", "returns the newest messages posted in a chat room, at most limit of them",
         "SELECT sender, text FROM messages WHERE room = {room} ORDER BY sent_at DESC LIMIT {limit}", "many", "list"),
    _sql("remove_cart_item", "conn cart_id product_id", "removes a product from a shopping cart in the cart_items table",
         "DELETE FROM cart_items WHERE cart_id = {cart_id} AND product_id = {product_id}", "write"),
    _sql("get_account_balance", "cursor account_number", "returns the balance of the account with that number",
         "SELECT balance FROM accounts WHERE number = {account_number}", "one"),
    _sql("rename_project", "cursor project_id name", "changes the name of a project in the projects table",
         "UPDATE projects SET name = {name} WHERE id = {project_id}", "write"),
)


# ---------------------------------------------------------------- prose (L2 documentation, L3 hooks, tutorials)

PROSE: dict[str, list[str]] = {
        "what": ["SQL injection happens when text from a user ends up inside an SQL statement and changes what the statement does.",
                 "SQL injection is a flaw where input is treated as part of a database query instead of as a value.",
                 "An SQL injection lets an attacker rewrite a query by typing SQL into an ordinary input field."],
        "how": ["It usually comes from building the query string with an f-string, the % operator or string concatenation and passing the result to cursor.execute.",
                "When a Python function formats a user name straight into the text it hands to cursor.execute, a quote in that name closes the string and the rest runs as SQL.",
                "Code that pastes a search term into a LIKE clause with string formatting before calling execute lets the term add its own conditions."],
        "harm": ["An attacker can read every table, change balances, or delete data.",
                 "A single crafted value such as ' OR 1=1 -- can return every row or skip a password check.",
                 "Injected statements can dump customer records or drop tables outright."],
        "fix": ["The fix is a parameterized query: keep placeholders such as ? or %s in the SQL text and pass the values as a tuple in the second argument of cursor.execute.",
                "Drivers bind parameters separately from the SQL text, so a value can never become SQL.",
                "Never format values into SQL; let the database driver bind them as parameters."],
        "questions": ["What is SQL injection and why is it dangerous?", "How does SQL injection work in Python code?",
                      "Why shouldn't I build SQL queries with f-strings?", "Can you explain SQL injection?"],
        "tut_secure": ["cursor.execute takes the SQL text and, separately, a tuple of values for its placeholders; the driver fills in each placeholder.",
                       "With sqlite3 the placeholder is ? and with psycopg2 it is %s; either way the values go in a tuple passed to cursor.execute."],
        "tut_vuln": ["cursor.execute runs whatever SQL string it is given, so the query can also be assembled first with an f-string or concatenation.",
                     "A query string can be built with Python string formatting and then passed to cursor.execute."],
        "story": ["typed a single quote into the shop's search box and watched the error page print half of the database query",
                  "slipped a few characters of SQL into a login form and walked past the password check",
                  "found that the library catalogue answered any question you smuggled into the title field"],
        "news": ["attackers injected database commands through a product search field",
                 "a login form passed user input straight into a database query"],
}


# ---------------------------------------------------------------- detector rules

# SQL statement verbs and the clauses that only SQL has: a built string with none is not a query.
SQL_KEYWORD = re.compile(
    r"\b(select|insert|update|delete|replace|merge|upsert|create|drop|alter|truncate|grant|revoke|show|"
    r"describe|explain|pragma|attach|from|where|values|into|order\s+by|group\s+by)\b", re.IGNORECASE
)
SQL_PLACEHOLDER = re.compile(r"\?|%s|%\(\w+\)s|(?<![:\w]):\w+")
#: cursor/connection methods: DB-API, psycopg's mogrify, asyncpg's fetch*, peewee's execute_sql
SQL_METHODS = {"execute", "executemany", "executescript", "mogrify", "fetch", "fetchrow", "fetchval", "execute_sql"}
SQL_FUNCS = {"text", "raw", "read_sql", "read_sql_query", "RawSQL"}  # SQLAlchemy, Django, pandas
EXTRA_KEYWORDS = ("where", "select", "tables", "order_by")  # Django QuerySet.extra(...)
BUILT_QUERY = "sql_injection.string_built_query"
#: Project helpers that run a query (``execute_query(sql)``, ``run_sql``, ``db.query(...)``,
#: ``fetch_all(sql)``): judged like ``execute``, when what they get is SQL built from values.
QUERY_HELPER = re.compile(r"_*(?:(?:execute|exec|run|raw|do|perform|db|sql|fetch|select|get|make)_?)?"
                          r"(?:query|sql|statement|stmt)(?:_?(?:all|one|many|db|raw|rows?|results?))?"
                          r"|_*execute_?\w+|_*fetch_?(?:all|one|rows?|results?)", re.IGNORECASE)
HELPER_QUERY = "sql_injection.query_helper"


def _extra_built(v, node: ast.Call) -> bool:
    """Django's ``.extra(where=[...], select={...})`` with a string built from values."""
    for k in node.keywords:
        if k.arg in EXTRA_KEYWORDS:
            values = k.value.values if isinstance(k.value, ast.Dict) else getattr(k.value, "elts", [k.value])
            if any((kind := v.str_expr(e)) and kind[0] for e in values):
                return True
    return False


def on_call(v, node: ast.Call, q: str, last: str) -> None:
    """The query is a string built from values (formatting, concatenation) with SQL in its literal
    text, and not a parameterised call whose placeholders the built parts only carry."""
    if last == "extra" and isinstance(node.func, ast.Attribute) and _extra_built(v, node):
        v.hit(BUILT_QUERY, node)
        return
    is_method = isinstance(node.func, ast.Attribute) and last in SQL_METHODS
    helper = not (is_method or last in SQL_FUNCS) and bool(QUERY_HELPER.fullmatch(last)) \
        and v.local_function(node.func) is None  # a same-file helper is followed into its body instead
    if not (is_method or last in SQL_FUNCS or helper):
        return
    kind = v.str_expr(v.arg(node, 0))
    if not kind or not kind[0] or not SQL_KEYWORD.search(kind[1]):
        return
    has_params = ((is_method or helper) and len(node.args) > 1) or any(
        k.arg in ("params", "parameters", "args", "values", "bind", "binds") for k in node.keywords)
    # With parameters passed, interpolated parts that carry placeholders build the query's shape.
    if not (has_params and SQL_PLACEHOLDER.search(kind[1])):
        v.hit(HELPER_QUERY if helper else BUILT_QUERY, node)


def text_sink(callee: str, method: bool) -> bool:
    last = callee.rpartition(".")[2]
    return (method and last in SQL_METHODS) or last in SQL_FUNCS or (method and last == "extra") \
        or bool(QUERY_HELPER.fullmatch(last))


def on_text_call(t, c) -> str | None:
    """Text twin of ``on_call``."""
    if c.last == "extra":
        spans = [s for s in c.args if t.m[s[0]:s[1]].split("=")[0].strip() in EXTRA_KEYWORDS]
        return BUILT_QUERY if any(t.string(s, c.at)[0] for s in spans) else None
    helper = not ((c.method and c.last in SQL_METHODS) or c.last in SQL_FUNCS)
    built, text = t.string(c.first, c.at) if c.first else (False, "")
    has_params = ((c.last in SQL_METHODS or helper) and len(c.positional) > 1) or {
        "params", "parameters", "args", "values", "bind", "binds"} & c.keywords.keys()
    if built and SQL_KEYWORD.search(text) and not (has_params and SQL_PLACEHOLDER.search(text)):
        return HELPER_QUERY if helper else BUILT_QUERY
    return None


DETECTOR = Detector(
    rules={"string_built_query": "The SQL query is built from values by formatting or concatenation instead of "
                                 "being passed as query parameters.",
           "query_helper": "SQL built from values by formatting or concatenation is handed to a helper that runs "
                           "queries (execute_query, run_sql, ...) instead of being passed as parameters."},
    on_call=on_call, text_sink=text_sink, on_text_call=on_text_call,
)


FAMILY = Family(
    "sql_injection", "CWE-89", "database", "SQL injection", SQL_TASKS, sql_secure, sql_vulnerable, r"\.execute\(|^\s*(query|sql|stmt|q|pattern|like) = ",
    ("the query is built from user input", "user input is pasted into the SQL string",
     "string formatting lets the input rewrite the query", "the SQL text is assembled from a parameter"),
    ("parameterized query: input never becomes SQL", "values are passed separately from the SQL text",
     "placeholders keep user input out of the query", "the driver binds the parameters safely"),
    prose=PROSE, detector=DETECTOR,
)
