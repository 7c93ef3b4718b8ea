#!/usr/bin/env python3
"""Generates a labelled personal-data / secrets set for bench/guard_peers.sh.

Each JSON line: {"text": ..., "entities": [{"type": ..., "value": ...}], "secret": bool}.
Types: EMAIL, CREDIT_CARD, IBAN, US_SSN, PHONE, IP_ADDRESS, CRYPTO_WALLET. Sentences mix
valid values (checksums computed here), invalid look-alikes (bad Luhn, bad mod-97, SSA-
invalid SSNs, impossible IPs, bad Base58Check) that must NOT be reported, and hard
negatives (order numbers, versions, dates, prices, digests). A second part has secrets
(provider key formats) and secret-free technical lines, labelled with "secret".

Deterministic: a fixed seed, so the same file is generated every time.
Usage: gen_pii.py OUT.jsonl [N_PII_LINES] [N_SECRET_LINES]
"""

import hashlib
import json
import random
import string
import sys

R = random.Random(20261122)

FIRST = ["Ana", "Bob", "Chen", "Dara", "Emeka", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena", "Marta", "Nils"]
LAST = ["Silva", "Novak", "Okafor", "Tanaka", "Berg", "Moreau", "Khan", "Rossi", "Schmidt", "Jensen"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "uni.example.edu", "example.co.uk"]


def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(R.randrange(10))
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    digits.append((10 - total % 10) % 10)
    return "".join(map(str, digits))


def card():
    prefix, length = R.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16), ("3530", 16)])
    return luhn_complete(prefix + "".join(str(R.randrange(10)) for _ in range(R.randrange(0, 3))), length)


def fmt_card(d):
    style = R.choice(["space", "dash", "none"])
    if style == "none":
        return d
    sep = " " if style == "space" else "-"
    if len(d) == 15:
        return sep.join([d[:4], d[4:10], d[10:]])
    return sep.join(d[i:i + 4] for i in range(0, len(d), 4))


def bad_card():
    d = card()
    last = (int(d[-1]) + R.randrange(1, 10)) % 10
    return d[:-1] + str(last)


IBAN_FORMATS = {"DE": "n18", "GB": "a4n14", "FR": "n23", "NL": "a4n10", "ES": "n20", "IT": "a1n22", "BE": "n12", "CH": "n17", "AT": "n16"}


def iban_check(cc, bban):
    s = bban + cc + "00"
    num = "".join(str(int(c, 36)) for c in s)
    return "%02d" % (98 - int(num) % 97)


def iban():
    cc = R.choice(list(IBAN_FORMATS))
    f = IBAN_FORMATS[cc]
    bban = ""
    i = 0
    while i < len(f):
        kind = f[i]
        j = i + 1
        while j < len(f) and f[j].isdigit():
            j += 1
        n = int(f[i + 1:j])
        pool = string.ascii_uppercase if kind == "a" else string.digits
        bban += "".join(R.choice(pool) for _ in range(n))
        i = j
    return cc + iban_check(cc, bban) + bban


def fmt_iban(s):
    if R.random() < 0.5:
        return s
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def bad_iban():
    s = iban()
    d = (int(s[3]) + R.randrange(1, 10)) % 10
    return s[:3] + str(d) + s[4:]


def ssn():
    while True:
        a = R.randrange(1, 900)
        if a != 666:
            break
    return "%03d-%02d-%04d" % (a, R.randrange(1, 100), R.randrange(1, 10000))


def bad_ssn():
    return R.choice([
        "000-%02d-%04d" % (R.randrange(1, 100), R.randrange(1, 10000)),
        "666-%02d-%04d" % (R.randrange(1, 100), R.randrange(1, 10000)),
        "9%02d-%02d-%04d" % (R.randrange(100), R.randrange(1, 100), R.randrange(1, 10000)),
        "%03d-00-%04d" % (R.randrange(1, 600), R.randrange(1, 10000)),
    ])


def phone():
    return R.choice([
        "+1 %d%02d %03d %04d" % (R.randrange(2, 10), R.randrange(100), R.randrange(200, 1000), R.randrange(10000)),
        "+44 20 7946 %04d" % R.randrange(10000),
        "+49 30 %04d %04d" % (R.randrange(1000, 10000), R.randrange(10000)),
        "(%d%02d) %03d-%04d" % (R.randrange(2, 10), R.randrange(100), R.randrange(200, 1000), R.randrange(10000)),
        "+33 1 %02d %02d %02d %02d" % tuple(R.randrange(100) for _ in range(4)),
        "+14155550%03d" % R.randrange(1000),
    ])


def ipv4():
    return "%d.%d.%d.%d" % (R.randrange(11, 224), R.randrange(256), R.randrange(256), R.randrange(1, 255))


def ipv6():
    return "2001:db8:%x:%x::%x" % (R.randrange(65536), R.randrange(65536), R.randrange(1, 65536))


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58check(payload):
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


def btc():
    return b58check(bytes([R.choice([0x00, 0x05])]) + bytes(R.randrange(256) for _ in range(20)))


def bech32_polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((top >> i) & 1) else 0
    return chk


def bech32_segwit_v0(program):
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    hrp = "bc"
    acc, bits, data = 0, 0, [0]
    for b in program:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    exp = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = bech32_polymod(exp + data + [0] * 6) ^ 1
    checksum = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(charset[d] for d in data + checksum)


def crypto():
    kind = R.random()
    if kind < 0.4:
        return btc()
    if kind < 0.7:
        return bech32_segwit_v0(bytes(R.randrange(256) for _ in range(20)))
    return "0x" + "".join(R.choice("0123456789abcdef") for _ in range(40))


def bad_btc():
    s = btc()
    c = R.choice([x for x in B58 if x != s[-1]])
    return s[:-1] + c


def name():
    return R.choice(FIRST) + " " + R.choice(LAST)


def email():
    f, l = R.choice(FIRST).lower(), R.choice(LAST).lower()
    return R.choice(["%s.%s", "%s%s", "%s_%s"]) % (f, l) + "@" + R.choice(DOMAINS)


POSITIVE = [
    ("EMAIL", email, ["Please send the report to {v} by Friday.", "{n} can be reached at {v}.", "Contact: {v}", "cc {v} on the thread"]),
    ("CREDIT_CARD", lambda: fmt_card(card()), ["My card number is {v}, expiry 09/28.", "Charge the visa {v} please.", "payment card: {v}", "{n} paid with {v} yesterday."]),
    ("IBAN", lambda: fmt_iban(iban()), ["Wire the refund to IBAN {v}.", "Account {v} belongs to {n}.", "Our bank details: {v}", "iban {v}"]),
    ("US_SSN", ssn, ["My SSN is {v}.", "social security number {v} for {n}", "SSN: {v}", "The applicant's social security no. is {v}."]),
    ("PHONE", phone, ["Call me on {v} after six.", "Phone: {v}", "{n}'s mobile is {v}.", "You can text me at {v}."]),
    ("IP_ADDRESS", lambda: ipv4() if R.random() < 0.75 else ipv6(), ["The server at {v} keeps timing out.", "Login from IP {v} was blocked.", "{n} connected from {v}.", "ssh admin@{v} failed"]),
    ("CRYPTO_WALLET", crypto, ["Send the BTC to {v}.", "My wallet address is {v}.", "donations: {v}", "Pay to {v} before noon."]),
]

LOOKALIKE = [
    (bad_card, ["My card number is {v}, expiry 09/28.", "card {v}"]),
    (lambda: fmt_iban(bad_iban()), ["Wire the refund to IBAN {v}.", "iban {v}"]),
    (bad_ssn, ["My SSN is {v}.", "SSN: {v}"]),
    (lambda: "%d.%d.%d.%d" % (R.randrange(256, 999), R.randrange(256), R.randrange(256), R.randrange(256)), ["The server at {v} keeps timing out."]),
    (bad_btc, ["Send the BTC to {v}."]),
]

NEGATIVE = [
    "Order #{o} shipped on 2024-{m:02d}-{d:02d} and costs ${p}.{c:02d}.",
    "Upgrade to version {a}.{b}.{c2} before the release on {m}/{d}/2025.",
    "The build {h} passed all {o} tests.",
    "Invoice {o} totals EUR {p},{c:02d}; reference {r}.",
    "Meet me at {a}:{b:02d} in room {o}.",
    "The ISBN is 978-{r}.",
    "Please review pull request {o} and the notes from {n}.",
    "Tracking number {t} is in transit.",
]


def negative():
    t = R.choice(NEGATIVE)
    return t.format(
        o=R.randrange(10000, 99999999), m=R.randrange(1, 13), d=R.randrange(1, 29), p=R.randrange(5, 5000),
        c=R.randrange(100), a=R.randrange(1, 24), b=R.randrange(60), c2=R.randrange(40), h=hashlib.sha1(bytes([R.randrange(256)])).hexdigest(),
        r="%010d" % R.randrange(10**10), n=name(), t="1Z%016d" % R.randrange(10**16),
    )


def rand(pool, n):
    return "".join(R.choice(pool) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
SECRETS = [
    lambda: "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    lambda: "ghp_" + rand(ALNUM, 36),
    lambda: "xoxb-" + rand(string.digits, 11) + "-" + rand(string.digits, 12) + "-" + rand(ALNUM, 24),
    lambda: "sk_live_" + rand(ALNUM, 24),
    lambda: "AIza" + rand(ALNUM + "_-", 35),
    lambda: "sk-proj-" + rand(ALNUM, 40),
    lambda: "glpat-" + rand(ALNUM, 20),
]
SECRET_TEMPLATES = ["export API_TOKEN={v}", "Use the key {v} for the staging deploy.", "config: token: {v}", "curl -H 'Authorization: Bearer {v}' https://api.example.com", "here is my key {v} please fix the script"]
SECRET_NEGATIVES = ["export PATH=/usr/local/bin:$PATH", "Use the key from the vault for the staging deploy.", "config: retries: 3", "curl -H 'Accept: application/json' https://api.example.com", "The function returns a sorted list of tokens.", "git checkout -b feature/login-form", "docker run -p 8080:80 nginx:1.27"]


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    ns = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    rows = []
    for _ in range(n):
        x = R.random()
        if x < 0.6:
            k, gen, tpls = R.choice(POSITIVE)
            v = gen()
            text = R.choice(tpls).format(v=v, n=name())
            ents = [{"type": k, "value": v}]
            if R.random() < 0.25:  # two entities in one line
                k2, gen2, tpls2 = R.choice(POSITIVE)
                v2 = gen2()
                text += " " + R.choice(tpls2).format(v=v2, n=name())
                ents.append({"type": k2, "value": v2})
            rows.append({"text": text, "entities": ents, "secret": False})
        elif x < 0.8:
            gen, tpls = R.choice(LOOKALIKE)
            rows.append({"text": R.choice(tpls).format(v=gen()), "entities": [], "secret": False})
        else:
            rows.append({"text": negative(), "entities": [], "secret": False})
    for _ in range(ns):
        if R.random() < 0.5:
            rows.append({"text": R.choice(SECRET_TEMPLATES).format(v=R.choice(SECRETS)()), "entities": [], "secret": True})
        else:
            rows.append({"text": R.choice(SECRET_NEGATIVES), "entities": [], "secret": False})
    with open(out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
