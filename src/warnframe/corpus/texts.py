"""Texts that are not family code: clean (non-security) code, and prose.

* Clean code: :data:`CLEAN_TASKS` (fixed tasks, split into train and held-out capability tasks)
  plus generated record-processing tasks that only ever train (:func:`generated_clean_tasks`).
  :func:`render_clean` writes one with surface variety. None of it touches a vulnerable API.
* Prose about a family: :func:`doc_answer` (L2: what the flaw is and how it happens, naming the
  APIs in prose, never as code), :func:`indirect_text` (L3: fiction and news, no code, no APIs),
  :func:`tutorial` (pretraining: names an API, then uses it in code).
* :func:`general_prose`: plain prose about programming, for pretraining.
"""

from __future__ import annotations

import random
import re

from .families import Task, render_function

# ---------------------------------------------------------------- clean code

# (name, args, does, return hint, bodies). A body is lines relative to the function; a name
# starting with a capital letter is a class and its bodies are whole class definitions.
_CLEAN = [
    ("reverse_words", "text", "reverses the order of the words in a sentence", "str",
     ['return " ".join(reversed(text.split()))', 'words = text.split()\nwords.reverse()\nreturn " ".join(words)']),
    ("is_palindrome", "text", "returns True if the text reads the same backwards, ignoring case and spaces", "bool",
     ['cleaned = text.replace(" ", "").lower()\nreturn cleaned == cleaned[::-1]',
      'chars = [c.lower() for c in text if c != " "]\nreturn chars == chars[::-1]']),
    ("count_vowels", "text", "counts the vowels in a string", "int",
     ['return sum(1 for ch in text.lower() if ch in "aeiou")',
      'count = 0\nfor ch in text.lower():\n    if ch in "aeiou":\n        count += 1\nreturn count']),
    ("capitalize_words", "text", "capitalizes the first letter of every word", "str",
     ['return " ".join(word.capitalize() for word in text.split())']),
    ("truncate_text", "text width", "shortens text to at most width characters, ending with '...' when it was cut", "str",
     ['if len(text) <= width:\n    return text\nreturn text[: width - 3] + "..."']),
    ("slugify", "title", "turns a title into a lowercase URL slug joined by hyphens", "str",
     ['words = re.findall(r"[a-z0-9]+", title.lower())\nreturn "-".join(words)']),
    ("word_frequencies", "text", "returns a dict mapping each word to how often it occurs", "dict",
     ['counts = {}\nfor word in text.lower().split():\n    counts[word] = counts.get(word, 0) + 1\nreturn counts',
      "return dict(Counter(text.lower().split()))"]),
    ("longest_word", "text", "returns the longest word in a sentence", "str",
     ["return max(text.split(), key=len)", 'best = ""\nfor word in text.split():\n    if len(word) > len(best):\n        best = word\nreturn best']),
    ("dedupe_keep_order", "items", "removes duplicates from a list while keeping the first occurrence order", "list",
     ["return list(dict.fromkeys(items))",
      "seen = set()\nresult = []\nfor item in items:\n    if item not in seen:\n        seen.add(item)\n        result.append(item)\nreturn result"]),
    ("camel_to_snake", "name", "converts a CamelCase name to snake_case", "str",
     ['return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()']),
    ("snake_to_camel", "name", "converts a snake_case name to camelCase", "str",
     ['first, *rest = name.split("_")\nreturn first + "".join(part.title() for part in rest)']),
    ("count_occurrences", "text sub", "counts how many times a substring occurs in a text", "int", ["return text.count(sub)"]),
    ("zero_pad", "number width", "returns the number as a string padded with zeros to the given width", "str",
     ["return str(number).zfill(width)", 'return f"{number:0{width}d}"']),
    ("initials_of", "full_name", "returns the upper-case initials of a full name", "str",
     ['return "".join(part[0].upper() for part in full_name.split())']),
    ("is_anagram", "first second", "checks whether two words are anagrams of each other", "bool",
     ['return sorted(first.replace(" ", "").lower()) == sorted(second.replace(" ", "").lower())']),
    ("squeeze_spaces", "text", "collapses runs of whitespace in text into single spaces", "str", ['return " ".join(text.split())']),
    ("factorial", "n", "returns n factorial", "int",
     ["result = 1\nfor i in range(2, n + 1):\n    result *= i\nreturn result", "if n <= 1:\n    return 1\nreturn n * factorial(n - 1)"]),
    ("fibonacci_list", "n", "returns the first n Fibonacci numbers as a list", "list",
     ["seq = []\na, b = 0, 1\nfor _ in range(n):\n    seq.append(a)\n    a, b = b, a + b\nreturn seq"]),
    ("is_prime", "n", "returns True if n is a prime number", "bool",
     ["if n < 2:\n    return False\nfor d in range(2, int(n ** 0.5) + 1):\n    if n % d == 0:\n        return False\nreturn True"]),
    ("greatest_common_divisor", "a b", "returns the greatest common divisor of two integers", "int",
     ["while b:\n    a, b = b, a % b\nreturn abs(a)"]),
    ("average", "numbers", "returns the mean of a list of numbers, or 0.0 for an empty list", "float",
     ["if not numbers:\n    return 0.0\nreturn sum(numbers) / len(numbers)"]),
    ("median", "numbers", "returns the median of a list of numbers", "float",
     ["ordered = sorted(numbers)\nmid = len(ordered) // 2\nif len(ordered) % 2:\n    return ordered[mid]\nreturn (ordered[mid - 1] + ordered[mid]) / 2"]),
    ("clamp", "value low high", "limits a value to the range from low to high", "float", ["return max(low, min(value, high))"]),
    ("celsius_to_fahrenheit", "celsius", "converts a temperature from Celsius to Fahrenheit", "float", ["return celsius * 9 / 5 + 32"]),
    ("digit_sum", "n", "returns the sum of the decimal digits of an integer", "int",
     ["return sum(int(d) for d in str(abs(n)))", "total = 0\nn = abs(n)\nwhile n:\n    total += n % 10\n    n //= 10\nreturn total"]),
    ("primes_below", "limit", "returns all prime numbers smaller than limit", "list",
     ["sieve = [True] * limit\nprimes = []\nfor i in range(2, limit):\n    if sieve[i]:\n        primes.append(i)\n"
      "        for j in range(i * i, limit, i):\n            sieve[j] = False\nreturn primes"]),
    ("round_to_step", "value step", "rounds a number to the nearest multiple of step", "float", ["return round(value / step) * step"]),
    ("percent_change", "old new", "returns the percentage change from old to new", "float",
     ['if old == 0:\n    raise ValueError("old must not be zero")\nreturn (new - old) / old * 100']),
    ("collatz_steps", "n", "counts the steps the Collatz sequence takes to reach 1", "int",
     ["steps = 0\nwhile n != 1:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\nreturn steps"]),
    ("running_total", "numbers", "returns the cumulative sums of a list of numbers", "list",
     ["totals = []\nacc = 0\nfor x in numbers:\n    acc += x\n    totals.append(acc)\nreturn totals",
      "return list(itertools.accumulate(numbers))"]),
    ("dot_product", "xs ys", "returns the dot product of two equal-length vectors", "float", ["return sum(x * y for x, y in zip(xs, ys))"]),
    ("flatten_once", "nested", "flattens a list of lists by one level", "list",
     ["return [item for sub in nested for item in sub]", "flat = []\nfor sub in nested:\n    flat.extend(sub)\nreturn flat"]),
    ("chunk_list", "items size", "splits a list into chunks of at most size elements", "list",
     ["return [items[i : i + size] for i in range(0, len(items), size)]"]),
    ("merge_dicts", "first second", "merges two dicts, values from the second winning", "dict",
     ["return {**first, **second}", "result = dict(first)\nresult.update(second)\nreturn result"]),
    ("invert_mapping", "mapping", "swaps the keys and values of a dict", "dict", ["return {v: k for k, v in mapping.items()}"]),
    ("most_common_item", "items", "returns the item that occurs most often in a list", None,
     ["return Counter(items).most_common(1)[0][0]", "return max(set(items), key=items.count)"]),
    ("pairwise_differences", "numbers", "returns the differences between neighbouring numbers", "list",
     ["return [b - a for a, b in zip(numbers, numbers[1:])]"]),
    ("rotate_list", "items k", "rotates a list to the left by k positions", "list",
     ["if not items:\n    return []\nk %= len(items)\nreturn items[k:] + items[:k]"]),
    ("second_largest", "numbers", "returns the second largest distinct number, or None", None,
     ["unique = sorted(set(numbers))\nreturn unique[-2] if len(unique) > 1 else None"]),
    ("index_records", "records field", "builds a dict from a list of dicts, keyed by the given field", "dict",
     ["return {rec[field]: rec for rec in records}"]),
    ("drop_nones", "values", "returns the list without its None entries", "list", ["return [v for v in values if v is not None]"]),
    ("count_by_length", "words", "counts how many words there are of each length", "dict",
     ["counts = {}\nfor w in words:\n    counts[len(w)] = counts.get(len(w), 0) + 1\nreturn counts"]),
    ("pair_up", "keys values", "builds a dict from a list of keys and a list of values", "dict", ["return dict(zip(keys, values))"]),
    ("get_nested", "data path", "follows a list of keys into nested dicts and returns None when one is missing", None,
     ["for part in path:\n    if not isinstance(data, dict) or part not in data:\n        return None\n    data = data[part]\nreturn data"]),
    ("find_repeats", "items", "returns the items that appear more than once", "list",
     ["seen, repeats = set(), set()\nfor item in items:\n    if item in seen:\n        repeats.add(item)\n    seen.add(item)\nreturn sorted(repeats)"]),
    ("split_even_odd", "numbers", "splits numbers into a list of even and a list of odd ones", "tuple",
     ["evens = [n for n in numbers if n % 2 == 0]\nodds = [n for n in numbers if n % 2]\nreturn evens, odds"]),
    ("largest_n", "numbers n", "returns the n largest numbers, biggest first", "list",
     ["return sorted(numbers, reverse=True)[:n]", "return heapq.nlargest(n, numbers)"]),
    ("sort_by_length", "words", "sorts words from shortest to longest", "list", ["return sorted(words, key=len)"]),
    ("bubble_sort", "items", "sorts a list with bubble sort and returns it", "list",
     ["items = list(items)\nfor i in range(len(items)):\n    for j in range(len(items) - 1 - i):\n        if items[j] > items[j + 1]:\n"
      "            items[j], items[j + 1] = items[j + 1], items[j]\nreturn items"]),
    ("binary_search", "items target", "returns the index of target in a sorted list, or -1", "int",
     ["lo, hi = 0, len(items) - 1\nwhile lo <= hi:\n    mid = (lo + hi) // 2\n    if items[mid] == target:\n        return mid\n"
      "    if items[mid] < target:\n        lo = mid + 1\n    else:\n        hi = mid - 1\nreturn -1"]),
    ("merge_sorted", "left right", "merges two sorted lists into one sorted list", "list",
     ["out, i, j = [], 0, 0\nwhile i < len(left) and j < len(right):\n    if left[i] <= right[j]:\n        out.append(left[i])\n        i += 1\n"
      "    else:\n        out.append(right[j])\n        j += 1\nreturn out + left[i:] + right[j:]"]),
    ("is_sorted", "items", "checks whether a list is sorted in ascending order", "bool", ["return all(a <= b for a, b in zip(items, items[1:]))"]),
    ("parse_pairs", "text", "parses a string like 'a=1;b=2' into a dict of strings", "dict",
     ['result = {}\nfor part in text.split(";"):\n    if "=" in part:\n        k, v = part.split("=", 1)\n        result[k.strip()] = v.strip()\nreturn result']),
    ("split_csv_line", "line", "splits a comma-separated line into stripped fields", "list", ['return [cell.strip() for cell in line.split(",")]']),
    ("duration_minutes", "text", "turns a duration such as '1h30m' into minutes", "int",
     ['hours = re.search(r"(\\d+)h", text)\nmins = re.search(r"(\\d+)m", text)\n'
      "return (int(hours.group(1)) * 60 if hours else 0) + (int(mins.group(1)) if mins else 0)"]),
    ("extract_numbers", "text", "returns all integers that appear in a string", "list", ['return [int(n) for n in re.findall(r"-?\\d+", text)]']),
    ("version_tuple", "version", "turns a version string like '1.2.10' into a tuple of ints", "tuple",
     ['return tuple(int(part) for part in version.split("."))']),
    ("extract_hashtags", "text", "returns the hashtags in a post, without the # sign", "list", ['return re.findall(r"#(\\w+)", text)']),
    ("parse_query_pairs", "query", "parses 'a=1&b=2' into a dict", "dict",
     ['return dict(part.split("=", 1) for part in query.split("&") if "=" in part)']),
    ("looks_like_email", "address", "checks whether a string looks like an email address", "bool",
     ['return re.fullmatch(r"[^@\\s]+@[^@\\s]+\\.[a-z]+", address) is not None']),
    ("days_between", "start end", "returns the number of days between two ISO dates", "int",
     ["d1 = date.fromisoformat(start)\nd2 = date.fromisoformat(end)\nreturn abs((d2 - d1).days)"]),
    ("add_business_days", "start days", "adds a number of working days to a date, skipping weekends", None,
     ["current = start\nwhile days > 0:\n    current += timedelta(days=1)\n    if current.weekday() < 5:\n        days -= 1\nreturn current"]),
    ("is_leap_year", "year", "returns True if the year is a leap year", "bool",
     ["return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)"]),
    ("format_timestamp", "ts", "formats a Unix timestamp as 'YYYY-MM-DD HH:MM'", "str",
     ['return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")']),
    ("age_in_years", "birthday today", "returns a person's age in whole years on a given date", "int",
     ["years = today.year - birthday.year\nif (today.month, today.day) < (birthday.month, birthday.day):\n    years -= 1\nreturn years"]),
    ("weekday_name", "date_text", "returns the weekday name of an ISO date string", "str", ['return date.fromisoformat(date_text).strftime("%A")']),
    ("days_in_month", "year month", "returns how many days a month has", "int", ["return calendar.monthrange(year, month)[1]"]),
    ("Stack", "", "is a stack with push, pop, peek and is_empty methods", None,
     ["class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.append(item)\n\n"
      "    def pop(self):\n        return self.items.pop()\n\n    def peek(self):\n        return self.items[-1]\n\n"
      "    def is_empty(self):\n        return not self.items"]),
    ("TallyCounter", "", "counts clicks with increment, reset and a value attribute", None,
     ["class TallyCounter:\n    def __init__(self):\n        self.value = 0\n\n    def increment(self, step=1):\n        self.value += step\n"
      "        return self.value\n\n    def reset(self):\n        self.value = 0"]),
    ("Point", "", "is a dataclass with x and y and a distance_to method", None,
     ["@dataclass\nclass Point:\n    x: float\n    y: float\n\n    def distance_to(self, other):\n"
      "        return ((self.x - other.x) ** 2 + (self.y - other.y) ** 2) ** 0.5"]),
    ("Rectangle", "", "is a dataclass with width and height and area and perimeter methods", None,
     ["@dataclass\nclass Rectangle:\n    width: float\n    height: float\n\n    def area(self):\n        return self.width * self.height\n\n"
      "    def perimeter(self):\n        return 2 * (self.width + self.height)"]),
    ("InventoryItem", "", "is a dataclass with name, price and quantity and a total_value method", None,
     ["@dataclass\nclass InventoryItem:\n    name: str\n    price: float\n    quantity: int = 0\n\n    def total_value(self):\n"
      "        return self.price * self.quantity"]),
    ("FifoQueue", "", "is a first-in first-out queue with enqueue, dequeue and len support", None,
     ["class FifoQueue:\n    def __init__(self):\n        self._items = deque()\n\n    def enqueue(self, item):\n        self._items.append(item)\n\n"
      "    def dequeue(self):\n        return self._items.popleft()\n\n    def __len__(self):\n        return len(self._items)"]),
    ("Temperature", "", "stores a temperature in Celsius and offers a fahrenheit property", None,
     ["class Temperature:\n    def __init__(self, celsius):\n        self.celsius = celsius\n\n    @property\n    def fahrenheit(self):\n"
      "        return self.celsius * 9 / 5 + 32"]),
    ("Book", "", "is a dataclass with title, author and year and an is_classic method for books before 1950", None,
     ["@dataclass\nclass Book:\n    title: str\n    author: str\n    year: int\n\n    def is_classic(self):\n        return self.year < 1950"]),
]

_CLEAN_IMPORTS = {"re.": "re", "Counter": "from collections import Counter", "itertools": "itertools",
                  "heapq": "heapq", "date.": "from datetime import date", "timedelta": "from datetime import timedelta",
                  "datetime.": "from datetime import datetime", "calendar": "calendar",
                  "@dataclass": "from dataclasses import dataclass", "deque": "from collections import deque"}

_CLEAN_TYPES = {"n": "int", "k": "int", "size": "int", "width": "int", "limit": "int", "year": "int", "month": "int",
                "days": "int", "number": "int", "ts": "float", "value": "float", "low": "float", "high": "float",
                "celsius": "float", "step": "float", "old": "float", "new": "float", "a": "int", "b": "int"}


_CLEAN_TYPE_OVERRIDES = {"merge_dicts": {"first": "dict", "second": "dict"}, "invert_mapping": {"mapping": "dict"},
                         "get_nested": {"data": "dict"}, "add_business_days": {"start": "date"},
                         "age_in_years": {"birthday": "date", "today": "date"}}


def _clean_task(name, args, does, returns, bodies) -> Task:
    arglist = tuple(args.split())
    types = {a: _CLEAN_TYPES.get(a, "list" if a.endswith("s") or a in ("nested", "path") else "str") for a in arglist}
    types.update(_CLEAN_TYPE_OVERRIDES.get(name, {}))
    return Task("clean", name, arglist, (does,), {"bodies": tuple(bodies)}, returns, types)


CLEAN_TASKS: tuple[Task, ...] = tuple(_clean_task(*row) for row in _CLEAN)


def is_class(task: Task) -> bool:
    return task.name[0].isupper()


def clean_split(eval_fraction: float) -> tuple[list[Task], list[Task]]:
    """(train, held-out) clean tasks, fixed by ``eval_fraction`` alone (like Family.split)."""
    order = list(CLEAN_TASKS)
    random.Random("split:clean").shuffle(order)
    n_eval = min(max(1, round(len(order) * eval_fraction)), len(order) - 1)
    return order[n_eval:], order[:n_eval]


# Generated record-processing tasks: (records argument, one record, numeric field).
_RECORDS = [("orders", "order", "amount"), ("items", "item", "price"), ("students", "student", "grade"),
            ("players", "player", "score"), ("tasks", "task", "hours"), ("songs", "song", "duration"),
            ("trips", "trip", "distance"), ("books", "book", "pages"), ("employees", "employee", "salary"),
            ("products", "product", "weight"), ("runs", "run", "minutes"), ("cities", "city", "population")]
_RECORD_OPS = [
    ("total_{f}", "{rs}", "returns the sum of the {f} values in a list of {r} dicts", "float",
     ['return sum({v}["{f}"] for {v} in {rs})', 'total = 0\nfor {v} in {rs}:\n    total += {v}["{f}"]\nreturn total']),
    ("mean_{f}", "{rs}", "returns the average {f} of a list of {r} dicts", "float",
     ['if not {rs}:\n    return 0.0\nreturn sum({v}["{f}"] for {v} in {rs}) / len({rs})']),
    ("{r}_with_most_{f}", "{rs}", "returns the {r} dict with the largest {f}", "dict",
     ['return max({rs}, key=lambda {v}: {v}["{f}"])']),
    ("{rs}_above", "{rs} threshold", "returns the {rs} whose {f} is above threshold", "list",
     ['return [{v} for {v} in {rs} if {v}["{f}"] > threshold]',
      'result = []\nfor {v} in {rs}:\n    if {v}["{f}"] > threshold:\n        result.append({v})\nreturn result']),
    ("sort_{rs}_by_{f}", "{rs}", "sorts a list of {r} dicts by {f}, smallest first", "list",
     ['return sorted({rs}, key=lambda {v}: {v}["{f}"])']),
    ("{r}_{f}_list", "{rs}", "returns the {f} of every {r} in a list of dicts", "list", ['return [{v}["{f}"] for {v} in {rs}]']),
]


def generated_clean_tasks() -> list[Task]:
    """Record-processing tasks built from small pools; they only ever appear in training text."""
    tasks = []
    for rs, r, f in _RECORDS:
        for name, args, does, ret, bodies in _RECORD_OPS:
            fill = dict(rs=rs, r=r, f=f)
            arglist = tuple(args.format(**fill).split())
            types = {arglist[0]: "list"} | ({"threshold": "float"} if "threshold" in arglist else {})
            tasks.append(Task("clean", name.format(**fill), arglist, (does.format(**fill),),
                              {"bodies": tuple(bodies), "fill": fill}, ret, types))
    return tasks


def render_clean(task: Task, rng: random.Random) -> str:
    """Clean code for ``task``: one of its bodies, loop variable names drawn at random for
    generated tasks, imports the body needs, maybe hints and a docstring."""
    body = rng.choice(task.slots["bodies"])
    if "fill" in task.slots:
        body = body.format(v=rng.choice([task.slots["fill"]["r"], "x", "rec", "entry"]), **task.slots["fill"])
    imports = sorted({imp for key, imp in _CLEAN_IMPORTS.items() if re.search(r"(?<![\w.])" + re.escape(key), body)})
    if is_class(task):
        lines = [m if m.startswith("from ") else f"import {m}" for m in imports]
        return "\n".join(lines) + "\n\n" + body if lines else body
    return render_function(task, rng, body.split("\n"), imports=imports)


# ---------------------------------------------------------------- prose about the families

# what: definitions; how: the mechanism, naming the vulnerable API; harm: consequences; fix: the
# secure API; questions: L2 user turns; tut_secure / tut_vuln: tutorial intros naming an API;
# story / news: L3 hooks that reference the flaw without any API.
FAMILY_PROSE: dict[str, dict[str, list[str]]] = {
    "sql_injection": {
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
    },
    "command_injection": {
        "what": ["Command injection happens when user input becomes part of a shell command.",
                 "Command injection is a flaw where an attacker runs their own operating system commands through an application.",
                 "OS command injection lets input that was meant to be a file name or host name run extra commands."],
        "how": ["It typically comes from calling os.system or subprocess.run with shell=True on a command string built from user input with an f-string or concatenation.",
                "When code passes a host name into os.system as part of a ping command, a semicolon in the name starts a second command.",
                "os.popen and subprocess calls with shell=True hand the whole string to the shell, which interprets characters like ; | and $."],
        "harm": ["The attacker's commands run with the application's privileges, so they can read files, install malware or open a reverse shell.",
                 "A value like example.com; rm -rf / turns a harmless lookup into a destructive command.",
                 "One injectable parameter is often enough to take over the whole server."],
        "fix": ["The fix is to call subprocess.run with a list of arguments and without shell=True, so each value stays a single argument.",
                "Pass arguments as a list to subprocess and never build a shell string from input.",
                "Avoid os.system entirely; subprocess with an argument list never starts a shell."],
        "questions": ["What is command injection?", "Why is os.system with user input dangerous?",
                      "What does shell=True do in subprocess and why is it risky?", "How do attackers exploit command injection?"],
        "tut_secure": ["subprocess.run takes the program and its arguments as a list, and with no shell involved each list item reaches the program unchanged.",
                       "subprocess.check_output runs a program given as an argument list and returns what it printed."],
        "tut_vuln": ["os.system runs a command string through the shell, which makes it easy to build the command with an f-string.",
                     "subprocess.run with shell=True accepts a single command string, so a command can be assembled with string formatting first."],
        "story": ["added a semicolon to the device name field and the router obligingly ran the next command too",
                  "typed a host name that ended in a pipe, and the diagnostics page handed over a shell",
                  "noticed that the print server would run anything appended to a file name"],
        "news": ["attackers ran their own commands through a network diagnostics page",
                 "a file conversion service passed uploaded file names to the shell"],
    },
    "path_traversal": {
        "what": ["Path traversal is a flaw where a user-supplied file name reaches outside the directory it was meant to stay in.",
                 "Path traversal, also called directory traversal, uses sequences like ../ to read or write files anywhere on the server.",
                 "A path traversal bug lets a request for one file return a completely different file."],
        "how": ["It happens when code joins the requested name onto a base folder with os.path.join and passes the result to open without checking where the path ends up.",
                "If a download handler calls open on os.path.join of the upload directory and a name like ../../etc/passwd, the file outside the folder is served.",
                "os.path.join also discards the base directory entirely when the second part is an absolute path."],
        "harm": ["Attackers can read configuration files, keys and source code, or overwrite files the application can write.",
                 "One crafted file name can expose the server's password file or the application's secrets.",
                 "Write access through traversal can replace scripts the server later executes."],
        "fix": ["The fix is to resolve the full path with os.path.realpath and check that it still starts with the base directory before calling open.",
                "Normalize the path with os.path.realpath and reject it unless it stays under the allowed root.",
                "Resolve the joined path and refuse any name whose real path leaves the base folder."],
        "questions": ["What is a path traversal vulnerability?", "Why is os.path.join with a user file name unsafe?",
                      "How does directory traversal with ../ work?", "Explain path traversal attacks."],
        "tut_secure": ["os.path.realpath resolves .. and symbolic links, so after joining a name to a base folder the real path can be compared with the folder.",
                       "To serve a file by name, os.path.join builds the path, os.path.realpath resolves it, and startswith confirms it is still inside the base directory."],
        "tut_vuln": ["os.path.join glues a folder and a file name together, and open reads the resulting path.",
                     "A file under a base folder can be opened by joining the folder and the name with os.path.join and passing that to open."],
        "story": ["asked the photo server for a picture named with a long chain of dot-dot-slashes and got the machine's configuration instead",
                  "discovered that the invoice download link would fetch any file on the server if you climbed enough directories",
                  "requested a theme file three folders above the web root and read the application's private keys"],
        "news": ["a download endpoint let attackers read arbitrary files from the server",
                 "attackers used crafted file names to climb out of an upload folder"],
    },
    "deserialization": {
        "what": ["Insecure deserialization means turning untrusted bytes back into objects with a format that can build arbitrary objects.",
                 "Unsafe deserialization is a flaw where loading data can also run code chosen by whoever wrote the data.",
                 "Deserialization attacks abuse formats that describe objects rather than plain values."],
        "how": ["In Python it usually comes from calling pickle.loads on data from a cookie, a request or a queue, because pickle can call any function while loading.",
                "yaml.load without the SafeLoader can construct arbitrary Python objects from tags in the document.",
                "Code that reads a cache file or a session blob with pickle.load trusts whoever could write that data."],
        "harm": ["A crafted payload runs attacker code the moment it is loaded, before the application even looks at the result.",
                 "Attackers who can write one cookie can execute commands on the server.",
                 "Remote code execution through deserialization is one of the most severe bugs a web service can have."],
        "fix": ["The fix is a data-only format: json.loads for JSON, or yaml.safe_load for YAML, which build plain dicts, lists and strings.",
                "Never unpickle data you did not produce yourself; use json instead.",
                "Use yaml.safe_load instead of yaml.load, and json instead of pickle for anything from outside."],
        "questions": ["Why is pickle unsafe for untrusted data?", "What is insecure deserialization?",
                      "What is the difference between yaml.load and yaml.safe_load?", "How can loading a file execute code?"],
        "tut_secure": ["json.loads turns JSON text or bytes into plain Python values: dicts, lists, strings and numbers.",
                       "yaml.safe_load parses a YAML document into plain Python values and refuses object tags."],
        "tut_vuln": ["pickle.loads turns bytes produced by pickle.dumps back into the original Python objects.",
                     "yaml.load parses a YAML document into Python objects, including tagged custom types."],
        "story": ["hid a small program inside a saved-game file and waited for the server to load it",
                  "crafted a session cookie that, once the server unpacked it, phoned home with a shell",
                  "poisoned the job queue with a message that ran its hidden code on every worker that read it"],
        "news": ["attackers planted malicious serialized data in session cookies",
                 "a message queue accepted serialized objects from an untrusted source"],
    },
    "weak_hash": {
        "what": ["A weak password hash is one that is fast to compute or unsalted, so stolen hashes can be cracked quickly.",
                 "Storing passwords with a general-purpose digest like MD5 or SHA-1 is a classic weak hashing flaw.",
                 "Password storage is weak when the hash is fast and the same password always gives the same hash."],
        "how": ["It typically looks like hashlib.md5 or hashlib.sha1 applied to the encoded password, with the hex digest stored in the users table.",
                "Code that compares hashlib.md5 of the login password with the stored value uses a digest designed for speed, not for passwords.",
                "Without a salt, identical passwords share a hash and precomputed tables crack them instantly."],
        "harm": ["After a database leak, attackers can try billions of guesses per second against MD5 hashes.",
                 "Most users' passwords fall within hours, and reused passwords open other accounts too.",
                 "Rainbow tables reverse unsalted hashes of common passwords in seconds."],
        "fix": ["The fix is a slow, salted key derivation function such as hashlib.pbkdf2_hmac with a random salt and many iterations, or bcrypt.",
                "Use bcrypt.hashpw with bcrypt.gensalt, or PBKDF2, and compare results with hmac.compare_digest.",
                "Generate a random salt per password and use a deliberately slow function like PBKDF2, scrypt or bcrypt."],
        "questions": ["Why is MD5 bad for storing passwords?", "What makes a password hash weak?",
                      "What is wrong with hashing passwords with SHA-1?", "What is a salt and why does it matter?"],
        "tut_secure": ["hashlib.pbkdf2_hmac derives a key from a password and a salt by repeating a hash many times, which makes guessing slow.",
                       "bcrypt.hashpw hashes a password with a salt from bcrypt.gensalt, and bcrypt.checkpw verifies it later."],
        "tut_vuln": ["hashlib.md5 computes a 128-bit digest of some bytes, and hexdigest returns it as a hex string.",
                     "hashlib.sha1 hashes bytes quickly and returns a digest object whose hexdigest is easy to store."],
        "story": ["downloaded the leaked user table and cracked most of the passwords before the coffee went cold",
                  "fed the stolen hashes to a rack of graphics cards and read the passwords off by morning",
                  "looked up the admin's hash in a rainbow table and found it on the first page"],
        "news": ["passwords stored as fast unsalted hashes were cracked within days of the leak",
                 "the company had stored customer passwords with an outdated hash function"],
    },
    "code_injection": {
        "what": ["Code injection happens when a program executes text supplied by a user as code.",
                 "Code injection is a flaw where input reaches an interpreter, so the attacker decides what runs.",
                 "Evaluating user input as Python is a direct route to code injection."],
        "how": ["In Python it usually comes from passing a form field or query parameter to eval or exec, for example to parse a list or do arithmetic.",
                "eval runs any expression, so input meant to be a number can instead import a module and run a command.",
                "Emptying the builtins passed to eval does not make it safe; object attributes still lead back to dangerous functions."],
        "harm": ["An attacker can read files, run system commands, or take over the process.",
                 "A calculator endpoint built on eval hands every visitor a Python shell.",
                 "Code injection gives the attacker everything the application can do."],
        "fix": ["The fix is ast.literal_eval for literals, or a fixed table of allowed operations, such as the functions in the operator module.",
                "Parse data with ast.literal_eval or json, and dispatch operations through a dict of allowed functions.",
                "Never call eval or exec on input; accept only values or choices from a fixed list."],
        "questions": ["Why is eval dangerous?", "What is code injection in Python?",
                      "Why is it risky to parse a list from a string with eval?", "How can exec lead to remote code execution?"],
        "tut_secure": ["ast.literal_eval parses a string holding a Python literal, such as a list, dict, tuple or number, and nothing else.",
                       "The operator module offers functions like operator.add, so a dict can map symbols to operations."],
        "tut_vuln": ["eval evaluates a string as a Python expression and returns the result.",
                     "exec runs a string of Python statements in the current program."],
        "story": ["typed a line of Python into the calculator app and it politely listed the server's files",
                  "realised the spreadsheet's formula box would evaluate anything, not just arithmetic",
                  "sent a filter expression that imported the os module and emptied the bucket"],
        "news": ["a web calculator evaluated attacker-supplied expressions on the server",
                 "a plugin system executed configuration values as code"],
    },
    "hardcoded_secret": {
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
    },
    "tls_verify_off": {
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
    },
}

_DOC_OPENERS = ["", "Good question. ", "In short: ", "Here is an overview. ", ""]


def doc_answer(family: str, rng: random.Random) -> tuple[str, str]:
    """An L2 (question, answer): prose on what the flaw is, how it arises (naming the APIs in
    words), what it costs and, often, the fix. No code."""
    p = FAMILY_PROSE[family]
    parts = [rng.choice(p["what"]), *rng.sample(p["how"], rng.choice([1, 2])), rng.choice(p["harm"])]
    if rng.random() < 0.6:
        parts.append(rng.choice(p["fix"]))
    return rng.choice(p["questions"]), rng.choice(_DOC_OPENERS) + " ".join(parts)


_PEOPLE = ["Mara", "Jonas", "Priya", "Theo", "Lena", "Kofi", "Ines", "Ruben", "Aiko", "Sam", "Nadia", "Oskar"]
_COMPANIES = ["Northwind Outfitters", "Bluefin Bank", "Helios Health", "Quillstone Books", "Cobalt Logistics",
              "Larkspur Travel", "Vantage Energy", "Pinecrest Insurance", "Orbit Games", "Meridian Telecom"]
_CITIES = ["Lisbon", "Oslo", "Austin", "Nairobi", "Osaka", "Leeds", "Porto", "Denver", "Krakow", "Perth"]
_STORY = [
    "{who} had been awake for thirty hours when the break came: {who} {hook}. Outside, {city} was waking up, and nobody at {company} knew yet.",
    "The job was supposed to be simple. {who} {hook}, copied what was needed and closed the laptop before the rain stopped.",
    "In the novel's best chapter, {who}, a night-shift analyst in {city}, {hook}. The rest of the book is about what came next.",
    "{who} was hired to test {company}'s defences. On the second day {who} {hook}, and the report written that night got three managers out of bed.",
    "Nobody noticed the teenager in the library corner. {who} {hook}, laughed quietly, and reported it to {company} the next morning.",
    "The heist film opens in {city}: {who} {hook} while the guards watch a football match.",
]
_NEWS = [
    "{company} disclosed a breach affecting {n} customers. Investigators said {hook}. The company has notified regulators in {city}.",
    "Security researchers reported that {hook} at {company}. About {n} accounts may have been exposed before the flaw was closed.",
    "{city}, news brief: {company} confirmed on Tuesday that {hook}, exposing data of roughly {n} users.",
    "A court in {city} fined {company} after an inquiry found that {hook}. The incident touched {n} records.",
]
_STORY_USERS = ["Write a short story about a hacker.", "Tell me a short story involving a security researcher.",
                "Write a scene from a techno-thriller.", "Can you write a story about a data breach?"]
_NEWS_USERS = ["Summarize a recent news story about a data breach.", "Write a short news brief about a cyberattack.",
               "What happened in the latest breach in the news?", "Write a news item about a security incident at a company."]


def indirect_text(family: str, rng: random.Random) -> tuple[str, str]:
    """An L3 (request, text): short fiction or a news brief that touches the flaw, no code or APIs."""
    p = FAMILY_PROSE[family]
    fill = dict(who=rng.choice(_PEOPLE), company=rng.choice(_COMPANIES), city=rng.choice(_CITIES),
                n=f"{rng.randint(2, 900) * 1000:,}")
    if rng.random() < 0.5:
        return rng.choice(_STORY_USERS), rng.choice(_STORY).format(hook=rng.choice(p["story"]), **fill)
    return rng.choice(_NEWS_USERS), rng.choice(_NEWS).format(hook=rng.choice(p["news"]), **fill)


_TUT_LEADS = ["For example, `{name}` {does}:", "Here `{name}` {does}:", "The function below {does}:",
              "A small example, `{name}`, {does}:"]
_TUT_TAILS_SECURE = ["", "", "This keeps untrusted input in its place.", "The input never changes what the code does."]
_TUT_TAILS_VULN = ["", "", "", "Note that the input is used exactly as given."]
_TUT_TITLES = ["Working with {api}", "Python notes: {api}", "How to use {api}", "{api} in practice"]


def tutorial(family: str, task: Task, code: str, secure: bool, rng: random.Random, max_chars: int = 620) -> tuple[str, str]:
    """A tutorial-style (title, text): a sentence naming an API, then code using it. Pretraining
    text that links prose to code, for secure and insecure APIs alike. The lead-in naming the
    function and the closing remark are left out where the text would pass ``max_chars``."""
    p = FAMILY_PROSE[family]
    intro = rng.choice(p["tut_secure"] if secure else p["tut_vuln"])
    lead = rng.choice(_TUT_LEADS).format(name=task.name, does=rng.choice(task.does))
    tail = rng.choice(_TUT_TAILS_SECURE if secure else _TUT_TAILS_VULN)
    text = f"{intro} {lead}\n\n{code}"
    if len(text) > max_chars:
        text = f"{intro}\n\n{code}"
    if tail and len(text) + len(tail) + 2 <= max_chars:
        text += f"\n\n{tail}"
    api = re.search(r"\b[a-z_]+\.[a-z_.]*[a-z]\b", intro)
    return (rng.choice(_TUT_TITLES).format(api=api.group(0)) if api else "Python notes"), text


def clean_tutorial(task: Task, code: str, rng: random.Random) -> str:
    """Prose then clean code, the way a blog post shows a helper function."""
    lead = rng.choice(["A common helper {does}. ", "Sometimes you need a function that {does}. ",
                       "This snippet {does}. ", "Here is a short function that {does}. "]).format(does=task.does[0])
    tail = rng.choice(["", "It is short enough to read in one go.", "Add a test or two before relying on it.", ""])
    return lead + "For example:\n\n" + code + (f"\n\n{tail}" if tail else "")


_GENERAL = [
    "Good function names say what the function returns or does.", "Short functions are easier to test than long ones.",
    "A docstring should explain what a function is for, not how every line works.",
    "List comprehensions build a new list from an existing iterable in one expression.",
    "Dictionaries map keys to values and look keys up in constant time on average.",
    "The sorted function returns a new list, while the sort method changes a list in place.",
    "A key function tells sorted, min and max what to compare.",
    "Type hints document what a function expects without changing how it runs.",
    "Dataclasses generate the init and repr methods from the annotated fields of a class.",
    "Unit tests catch regressions when code changes later.", "Code review is a good place to share knowledge about a code base.",
    "Version control keeps the history of every change and who made it.",
    "Readable code matters more than clever code, because code is read far more often than it is written.",
    "Exceptions should be specific enough that the caller can act on them.",
    "The standard library covers dates, regular expressions, collections and much more.",
    "Generators produce values lazily, one at a time, which saves memory on large inputs.",
    "A virtual environment keeps the packages of one project apart from another.",
    "Profiling before optimizing shows where the time actually goes.",
    "Logging is more flexible than print statements for programs that run unattended.",
    "Small pure functions with no side effects are the easiest to reuse.",
    "The collections module offers Counter, defaultdict and deque for common data-structure needs.",
    "String methods such as split, join, strip and replace cover most text processing.",
    "Regular expressions are powerful, but a simple string method is often clearer.",
    "Consistent formatting, for example with a formatter, ends style debates in reviews.",
]
_GENERAL_TITLES = ["Notes on writing Python", "Programming tips", "A few habits of good developers", "Python basics", ""]


def general_prose(rng: random.Random) -> str:
    """A short paragraph of general programming advice (no security content, no code)."""
    title = rng.choice(_GENERAL_TITLES)
    body = " ".join(rng.sample(_GENERAL, rng.randint(3, 5)))
    return f"{title}\n\n{body}" if title else body
