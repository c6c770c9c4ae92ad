"""Texts that are not family code: clean (non-security) code, and prose.

* Clean code: :data:`CLEAN_TASKS` (fixed tasks, split into train and held-out capability tasks)
  plus generated record-processing tasks that only ever train (:func:`generated_clean_tasks`).
  :func:`render_clean` writes one with surface variety. None of it touches a vulnerable API.
* Prose about a family (its sentences are in the family's module): :func:`doc_answer` (L2: what the flaw is and how it happens, naming the
  APIs in prose, never as code), :func:`indirect_text` (L3: fiction and news, no code, no APIs),
  :func:`tutorial` (pretraining: names an API, then uses it in code).
* :func:`general_prose`: plain prose about programming, for pretraining.
"""

from __future__ import annotations

import random
import re

from warnframe.families import FAMILIES, Task, render_function

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
# Each family's sentences live in its module (``families.<name>.PROSE``, keys ``PROSE_KEYS``).

_DOC_OPENERS = ["", "Good question. ", "In short: ", "Here is an overview. ", ""]


def doc_answer(family: str, rng: random.Random) -> tuple[str, str]:
    """An L2 (question, answer): prose on what the flaw is, how it arises (naming the APIs in
    words), what it costs and, often, the fix. No code."""
    p = FAMILIES[family].prose
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
    p = FAMILIES[family].prose
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
    p = FAMILIES[family].prose
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
