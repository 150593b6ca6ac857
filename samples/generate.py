#!/usr/bin/env python3
"""Writes samples/customers.csv: the demo customer base.

One customer per day of the year (Feb 29 included) in each of three zones eight to ten hours
apart (America/Los_Angeles, Europe/Bucharest, Asia/Vladivostok), so that whatever the day and
hour a newcomer first runs `ritualist run --once`, some customer somewhere has reached their
10:00 local send time on their birthday. Deterministic: re-running gives the same file.

Contacts that cannot be live: addresses at example.com (RFC 2606), and numbers from ranges kept
for fiction: +1 NXX 555-0100..0199 (NANP) and +44 7700 900000..900999 (Ofcom's drama range, used
for the Romanian and Russian customers too: no such range exists there). `ritualist` also refuses
`sample_data` whenever a real transport is configured.
"""
import csv, datetime, os

ZONES = [
    ("America/Los_Angeles", "en", None, ["Emma", "Liam", "Olivia", "Noah", "Ava", "James"], ["Smith", "Brown", "Miller", "Davis"]),
    ("Europe/Bucharest", "ro", None, ["Ana", "Ștefan", "Ioana", "Mihai", "Elena", "Andrei"], ["Popescu", "Ionescu", "Țurcanu", "Dumitrescu"]),
    ("Asia/Vladivostok", "ru", None, ["Анна", "Иван", "Мария", "Дмитрий", "Ольга", "Сергей"], ["Иванова", "Петров", "Смирнова", "Кузнецов"]),
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
                # 555-0100..0199 in four area codes: 400 fictional numbers for 366 customers.
                area = ["201", "212", "312", "415"][di // 100]
                phone = f"+1 {area} 555 01{di % 100:02d}"
            else:
                # Ofcom's drama range, 500 numbers for each of the other two zones.
                phone = f"+44 7700 900{(zi - 1) * 500 + di:03d}"
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
