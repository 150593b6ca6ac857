#!/usr/bin/env python3
"""Writes samples/customers.csv: the demo customer base.

One customer per day of the year (Feb 29 included) in each of three zones eight to ten hours
apart (America/Los_Angeles, Europe/Bucharest, Asia/Vladivostok), so that whatever the day and
hour a newcomer first runs `ritualist run --once`, some customer somewhere has reached their
10:00 local send time on their birthday. Deterministic: re-running gives the same file.
"""
import csv, datetime, os

ZONES = [
    ("America/Los_Angeles", "en", "+1 415 555 {:04d}", ["Emma", "Liam", "Olivia", "Noah", "Ava", "James"], ["Smith", "Brown", "Miller", "Davis"]),
    ("Europe/Bucharest", "ro", "+40 72{:01d} {:03d} {:03d}", ["Ana", "Ștefan", "Ioana", "Mihai", "Elena", "Andrei"], ["Popescu", "Ionescu", "Țurcanu", "Dumitrescu"]),
    ("Asia/Vladivostok", "ru", "+7 914 {:03d} {:02d} {:02d}", ["Анна", "Иван", "Мария", "Дмитрий", "Ольга", "Сергей"], ["Иванова", "Петров", "Смирнова", "Кузнецов"]),
]

def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "customers.csv")
    days = []
    d = datetime.date(2000, 1, 1)  # a leap year: includes Feb 29
    while d.year == 2000:
        days.append(d)
        d += datetime.timedelta(days=1)
    rows = []
    n = 0
    for zi, (zone, locale, phone_fmt, firsts, lasts) in enumerate(ZONES):
        for di, day in enumerate(days):
            n += 1
            first = firsts[(di + zi) % len(firsts)]
            last = lasts[(di * 7 + zi) % len(lasts)]
            year = 1950 + (di * 13 + zi * 7) % 55
            if day.month == 2 and day.day == 29:
                year -= year % 4  # a Feb-29 birthday needs a leap year
            birthday = f"{year:04d}-{day.month:02d}-{day.day:02d}" if di % 5 else f"--{day.month:02d}-{day.day:02d}"
            ascii_first = first.encode("ascii", "ignore").decode() or "client"
            email = f"{ascii_first.lower() or 'client'}.{n}@example.com"
            if zi == 0:
                phone = phone_fmt.format(n % 10000)
            elif zi == 1:
                phone = phone_fmt.format(n % 10, (n * 37) % 1000, (n * 91) % 1000)
            else:
                phone = phone_fmt.format((n * 37) % 1000, (n * 13) % 100, (n * 7) % 100)
            pref = ["email", "sms", ""][(di + zi) % 3]
            if di % 17 == 0:
                email = ""          # phone only
            if di % 19 == 0:
                phone = ""          # email only
            signup = (datetime.date(2018, 1, 1) + datetime.timedelta(days=(di * 11 + zi * 100) % 2500)).isoformat()
            rows.append({
                "external_id": f"C{n:05d}",
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": phone,
                "locale": locale,
                "time_zone": zone,
                "birthday": birthday,
                "signup_date": signup,
                "preferred_channel": pref,
                "tier": ["bronze", "silver", "gold"][n % 3],
            })
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} customers to {out}")

if __name__ == "__main__":
    main()
