"""Regenerate labelled.jsonl: 200 short strings with the dates and prices they contain.

Deterministic (a fixed seed); evaluate.py reads the shipped file, so this script is only
for inspection or for making a different set:  python make_labelled.py > labelled.jsonl

Each line is {"text": ..., "date": [...], "price": [...]}: the exact substrings a perfect
extractor returns, left to right. Formats (share of entities in parentheses, roughly):
  dates:  2023-04-05, 5/4/2023 or 05/04/2023, 5 Mar 2023 / 5 March 2023, lower-case months
          (5 mar 2023), and month first: March 5, 2023 (which the shipped rules miss)
  prices: $12.99, $5, €40, £3.50, 12.99 USD, EUR 7, lower-case codes (12 usd),
          and thousands separators: $1,299.00 (which the shipped rules get wrong)
Distractors that look like them: versions (v2.3.1), times (12:30), percentages, phone
numbers, fractions (3/4), and dates or amounts glued inside identifiers (AB12/05/20197,
build-2021-03-04rc, SAVE$10NOW), which are not entities.
"""

import json
import random
import sys

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def date(rng: random.Random) -> str:
    y, m, d = rng.randint(1995, 2030), rng.randint(1, 12), rng.randint(1, 28)
    kind = rng.choices(
        ["iso", "slash", "slash0", "dmy", "dmy_long", "dmy_lower", "mdy"], weights=[5, 3, 2, 3, 2, 2, 1]
    )[0]
    if kind == "iso":
        return f"{y:04d}-{m:02d}-{d:02d}"
    if kind == "slash":
        return f"{d}/{m}/{y}"
    if kind == "slash0":
        return f"{d:02d}/{m:02d}/{y}"
    if kind == "dmy":
        return f"{d} {MONTHS[m - 1][:3]} {y}"
    if kind == "dmy_long":
        return f"{d} {MONTHS[m - 1]} {y}"
    if kind == "dmy_lower":
        return f"{d} {MONTHS[m - 1][:3].lower()} {y}"
    return f"{MONTHS[m - 1]} {d}, {y}"


def amount(rng: random.Random) -> str:
    whole = rng.choice([rng.randint(1, 9), rng.randint(10, 99), rng.randint(100, 999)])
    return f"{whole}.{rng.randint(0, 99):02d}" if rng.random() < 0.5 else str(whole)


def price(rng: random.Random) -> str:
    kind = rng.choices(
        ["sym", "code_after", "code_before", "code_lower", "thousands"], weights=[6, 3, 2, 2, 1]
    )[0]
    a = amount(rng)
    if kind == "sym":
        return rng.choice("$€£") + a
    if kind == "code_after":
        return f"{a} {rng.choice(['USD', 'EUR', 'GBP'])}"
    if kind == "code_before":
        return f"{rng.choice(['USD', 'EUR', 'GBP'])} {a}"
    if kind == "code_lower":
        return f"{a} {rng.choice(['usd', 'eur', 'gbp'])}"
    return f"${rng.randint(1, 9)},{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d}"


def distractor(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
    if kind == 1:
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    if kind == 2:
        return f"{rng.randint(5, 70)}% off"
    if kind == 3:
        return f"call 555-{rng.randint(1000, 9999)}"
    if kind == 4:
        return f"{rng.randint(1, 3)}/{rng.randint(4, 8)} of the stock"
    if kind == 5:
        day, month, year = rng.randint(10, 28), rng.randint(1, 12), rng.randint(1995, 2030)
        return f"ref AB{day}/{month:02d}/{year}{rng.randint(0, 9)}"
    if kind == 6:
        return f"build-{rng.randint(1995, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}rc"
    return f"code SAVE${rng.randint(5, 50)}NOW"


TEMPLATES = [
    "Invoice dated {d} for {p}.",
    "Paid {p} on {d}",
    "Meeting moved to {d}, tickets {p} each",
    "Refund of {p} and a fee of {p} issued {d}",
    "Valid from {d} until {d}",
    "Total: {p}",
    "Shipped {d}; {x}",
    "Subscription renews {d} at {p} per month ({x})",
    "Deal: {p} instead of {p}, {x}",
    "Note: {x}, nothing due",
    "Delivered {d} - see {x}",
    "Budget {p}, spent {p} by {d}",
    "{x} and {x}",
    "Due {d}: {p}",
]


def make(n: int = 200, seed: int = 4) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        template = rng.choice(TEMPLATES)
        dates, prices = [], []
        text = ""
        i = 0
        while i < len(template):
            if template.startswith("{d}", i):
                value = date(rng)
                dates.append(value)
            elif template.startswith("{p}", i):
                value = price(rng)
                prices.append(value)
            elif template.startswith("{x}", i):
                value = distractor(rng)
            else:
                text += template[i]
                i += 1
                continue
            text += value
            i += 3
        rows.append({"text": text, "date": dates, "price": prices})
    return rows


if __name__ == "__main__":
    for row in make():
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
