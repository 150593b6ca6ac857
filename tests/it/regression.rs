//! Bad input from marketers and operators: every mistake is reported precisely (file, line,
//! hint), nothing is sent, and good CSV rows still import.

use std::path::Path;

use crate::peers::ScratchDir;

fn checkout() -> ScratchDir {
    crate::harness::newcomer_checkout()
}

/// (exit code, stdout, stderr) of `ritualist ARGS` in `dir`.
fn ritualist(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = crate::harness::ritualist(dir, args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn edit(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(
        s.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, s.replacen(from, to, 1)).unwrap();
}

fn nothing_sent(dir: &Path) {
    assert!(!dir.join("outbox").exists(), "something reached the outbox");
}

#[test]
fn a_typo_in_a_ritual_key_names_the_file_line_and_the_fix_and_sends_nothing() {
    let d = checkout();
    let ritual = d.path().join("config/rituals/birthday.yaml");
    edit(&ritual, "template: birthday", "templat: birthday");
    let (code, _, err) = ritualist(d.path(), &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("birthday.yaml:10:1: error: unknown field `templat`"),
        "{err}"
    );
    assert!(err.contains("did you mean `template`?"), "{err}");

    let (code, _, err) = ritualist(d.path(), &["run", "--once"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("birthday.yaml:10:1"), "{err}");
    nothing_sent(d.path());
}

#[test]
fn a_bad_value_in_the_config_names_its_line() {
    let d = checkout();
    edit(
        &d.path().join("config/ritualist.yaml"),
        "time_zone: Europe/Bucharest",
        "time_zone: Europe/Bucurest",
    );
    let (code, _, err) = ritualist(d.path(), &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("ritualist.yaml:10:14: error: unknown time zone `Europe/Bucurest`"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn an_unknown_variable_in_a_branch_that_would_not_run_is_caught_before_sending() {
    let d = checkout();
    let tpl = d.path().join("templates/birthday/ru/email.html.hbs");
    // Only customers without a known age would reach this branch.
    edit(
        &tpl,
        "<p>С любовью,",
        "{{#if occasion.age}}<p>{{occasion.age}}!</p>{{else}}<p>{{customer.frist_name}}</p>{{/if}}\n<p>С любовью,",
    );
    let (code, _, err) = ritualist(d.path(), &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        // Line 6 of the body the layout wraps (the branch inserted before "С любовью").
        err.contains("templates/birthday/ru/email.html.hbs:6:"),
        "{err}"
    );
    assert!(err.contains("customer.frist_name"), "{err}");
    assert!(
        err.contains("customer.first_name"),
        "a did-you-mean hint: {err}"
    );

    let (code, _, err) = ritualist(d.path(), &["run", "--once"]);
    assert_eq!(code, 2, "{err}");
    nothing_sent(d.path());
}

#[test]
fn a_missing_template_is_reported_against_the_ritual() {
    let d = checkout();
    std::fs::remove_file(d.path().join("templates/birthday/en/sms.hbs")).unwrap();
    let (code, _, err) = ritualist(d.path(), &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("birthday.yaml:10:1: error: ritual `birthday` sends sms but templates/birthday/en/ has no sms.hbs"), "{err}");
}

#[test]
fn broken_csv_rows_are_reported_with_their_lines_and_good_rows_still_import() {
    let d = checkout();
    let csv = d.path().join("people.csv");
    std::fs::write(
        &csv,
        "external_id;first_name;email;phone;birthday;time_zone\n\
         g1;Ana;ana@example.com;+40721000001;1990-03-01;Europe/Bucharest\n\
         b1;Bad;not-an-email;;1990-03-01;Europe/Bucharest\n\
         g2;Ion;;0721000002;--12-31;\n\
         b2;Bad;b2@example.com;;1990-02-30;Europe/Bucharest\n\
         b3;Bad;b3@example.com;;1990-01-01;Mars/Olympus\n\
         ;NoId;x@example.com;;;\n\
         g3;\"Multi\nline\";g3@example.com;;;\n\
         b4;Bad;b4@example.com;+40 72x;;\n",
    )
    .unwrap();
    let (code, out, err) = ritualist(d.path(), &["import", "customers", "people.csv"]);
    assert_eq!(code, 1, "{out}{err}");
    for (line, what) in [(5, "birthday"), (6, "Mars/Olympus"), (7, "external_id")] {
        let needle = format!("people.csv:{line}: rejected: ");
        let l = err
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no report for line {line}: {err}"));
        assert!(l.contains(what), "line {line} should mention {what}: {l}");
    }
    // Since issue 23 a bad email or phone leaves its row imported without it, with a warning
    // naming line, column and reason; a name's line break becomes a space.
    for (line, what) in [
        (
            3,
            "column `email`: invalid email address `not-an-email`: missing `@`; left out",
        ),
        (
            8,
            "column `first_name`: line breaks, tabs or repeated spaces became one space",
        ),
        (10, "column `phone`: invalid phone number `+40 72x`"),
    ] {
        let needle = format!("people.csv:{line}: warning: ");
        let l = err
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no warning for line {line}: {err}"));
        assert!(l.contains(what), "line {line} should say {what}: {l}");
    }
    assert!(
        !err.contains(":3: rejected") && !err.contains(":10: rejected"),
        "{err}"
    );
    assert!(out.contains("5 inserted"), "{out}");
    assert!(out.contains("3 rejected, 2 value(s) left out"), "{out}");
    // Re-importing is safe: updates, no duplicates.
    let (_, out, _) = ritualist(d.path(), &["import", "customers", "people.csv"]);
    assert!(out.contains("0 inserted, 5 updated"), "{out}");
}

#[test]
fn windows_1251_csv_imports_cyrillic_names() {
    let d = checkout();
    let text = "external_id;first_name;email;birthday\nw1;Светлана;sveta@example.com;01.03.1990\n";
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(text);
    std::fs::write(d.path().join("cp1251.csv"), &bytes).unwrap();
    let (code, out, err) = ritualist(d.path(), &["import", "customers", "cp1251.csv"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("windows-1251"), "{out}");
    let (code, out, _) = ritualist(
        d.path(),
        &[
            "preview",
            "birthday",
            "--customer",
            "w1",
            "--date",
            "2027-03-01",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Светлана"), "{out}");
}

/// #24: the shipped config imports demo customers whose contacts look real; with a real
/// transport configured they were texted. Now the config is refused, naming the key, before
/// anything is imported or sent.
#[test]
fn demo_data_with_a_real_transport_is_refused_naming_the_key() {
    let d = checkout();
    edit(
        &d.path().join("config/ritualist.yaml"),
        "  sms:\n    transport: outbox           # outbox | kannel\n",
        "  sms:\n    transport: kannel\n    kannel:\n      url: http://127.0.0.1:9/\n      username: u\n      password_env: PATH\n",
    );
    let (code, _, err) = ritualist(d.path(), &["run", "--once"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("ritualist.yaml:") && err.contains("`sample_data`") && err.contains("kannel"),
        "{err}"
    );
    assert!(
        !d.path().join("data").exists(),
        "no database was created: {err}"
    );
    nothing_sent(d.path());
    let (code, _, err) = ritualist(d.path(), &["check"]);
    assert_eq!(code, 1, "check reports it too: {err}");
    assert!(err.contains("`sample_data`"), "{err}");
}

/// #24: `optout X --scope category:mothers_dya`, `--scope ritual:nope` and `report --ritual
/// nope` printed success, exited 0 and did nothing. Names are checked against the loaded
/// rituals and calendars, with a did-you-mean, and a typo records nothing.
#[test]
fn names_a_command_takes_are_checked_with_a_did_you_mean() {
    let d = checkout();
    let (code, _, err) = ritualist(d.path(), &["import", "customers", "samples/customers.csv"]);
    assert_eq!(code, 0, "{err}");
    let birthday_plan = |d: &Path| {
        ritualist(
            d,
            &[
                "plan",
                "--customer",
                "C00400",
                "--date",
                "2027-02-03",
                "--format",
                "json",
            ],
        )
        .1
    };
    assert!(birthday_plan(d.path()).contains("\"decision\":\"send\""));
    for (scope, says) in [
        (
            "category:holidays.mothers_dya",
            "did you mean `category:holidays.mothers_day`?",
        ),
        ("category:birthdya", "did you mean `category:birthday`?"),
        ("ritual:nope", "unknown ritual `nope`"),
        ("ritual:birthdya", "did you mean `ritual:birthday`?"),
        ("chanel:sms", "did you mean `channel:sms`?"),
    ] {
        let (code, out, err) = ritualist(d.path(), &["optout", "C00400", "--scope", scope]);
        assert_eq!(code, 2, "{scope}: {out}{err}");
        assert!(err.contains(says), "{scope}: {err}");
        assert!(!out.contains("opted out"), "{scope}: {out}");
    }
    // Nothing was recorded: the birthday greeting still goes out; the right name stops it.
    assert!(birthday_plan(d.path()).contains("\"decision\":\"send\""));
    let (code, out, err) = ritualist(
        d.path(),
        &[
            "optout",
            "C00400",
            "--scope",
            "category:holidays.mothers_day",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("opted out of category:holidays.mothers_day"),
        "{out}"
    );
    let (code, _, err) = ritualist(
        d.path(),
        &["optout", "C00400", "--scope", "category:birthday"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(birthday_plan(d.path()).contains("opted_out:category:birthday"));

    let (code, _, err) = ritualist(d.path(), &["report", "--ritual", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown ritual `nope`"), "{err}");
    let (code, _, err) = ritualist(d.path(), &["report", "--ritual", "birthday"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ritualist(d.path(), &["preview", "birthdya", "--customer", "C00400"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did you mean `birthday`?"), "{err}");
    let (code, _, err) = ritualist(d.path(), &["plan", "--ritual", "birthdya"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did you mean `birthday`?"), "{err}");
}

/// #24: `audience: { countries: [RO] }` matched nobody whose locale is plain `ro`, although
/// the holiday calendar treats them as Romanian; and `preview … --locale en` refused, because
/// it re-decided the audience in the other locale.
#[test]
fn a_ro_customer_is_in_romania_for_audiences_and_previews_render_another_locale() {
    let d = checkout();
    let birthday = std::fs::read_to_string(d.path().join("config/rituals/birthday.yaml")).unwrap();
    std::fs::write(
        d.path().join("config/rituals/ro_birthday.yaml"),
        format!("{birthday}\naudience:\n  countries: [RO]\n"),
    )
    .unwrap();
    let (code, _, err) = ritualist(d.path(), &["import", "customers", "samples/customers.csv"]);
    assert_eq!(code, 0, "{err}");
    // C00400: locale `ro`, no country attribute; born on February 3rd.
    let (code, plan, err) = ritualist(
        d.path(),
        &[
            "plan",
            "--customer",
            "C00400",
            "--date",
            "2027-02-03",
            "--ritual",
            "ro_birthday",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(plan.contains("\"decision\":\"send\""), "{plan}");
    // An American customer is not in it.
    let (_, plan, _) = ritualist(
        d.path(),
        &[
            "plan",
            "--customer",
            "C00034",
            "--date",
            "2027-02-03",
            "--ritual",
            "ro_birthday",
            "--format",
            "json",
        ],
    );
    assert!(!plan.contains("\"decision\""), "{plan}");
    let (code, out, err) = ritualist(
        d.path(),
        &[
            "preview",
            "ro_birthday",
            "--customer",
            "C00400",
            "--date",
            "2027-02-03",
            "--locale",
            "en",
            "--channel",
            "email",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Happy birthday, Elena"),
        "rendered in English: {out}"
    );
    // #24: the human view printed the subject MIME-encoded, and `--raw` ("exactly as it goes on
    // the wire") started with a `=== email to …` line, so `--raw > x.eml` was not a message.
    let (code, out, err) = ritualist(
        d.path(),
        &[
            "preview",
            "ro_birthday",
            "--customer",
            "C00400",
            "--date",
            "2027-02-03",
            "--channel",
            "email",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Subject: La mulți ani, Elena"), "{out}");
    assert!(!out.contains("=?utf-8?"), "decoded: {out}");
    let raw = crate::harness::ritualist(
        d.path(),
        &[
            "preview",
            "ro_birthday",
            "--customer",
            "C00400",
            "--date",
            "2027-02-03",
            "--channel",
            "email",
            "--raw",
        ],
    );
    assert_eq!(
        raw.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let bytes = raw.stdout;
    assert!(
        bytes.starts_with(b"From: "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let text = String::from_utf8(bytes).unwrap();
    assert!(!text.contains("==="), "{text}");
    assert!(
        text.contains("\r\n\r\n") && text.ends_with("\r\n"),
        "{text:?}"
    );
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "CRLF line ends only: {text:?}"
    );
    assert!(
        text.contains("Subject: La =?utf-8?b?"),
        "the wire form: {text}"
    );
    // A test send whose address does not fit the channel asked for is refused, not re-routed.
    for (channel, to) in [
        ("sms", "marketer@floare.example"),
        ("email", "+44 7700 900999"),
    ] {
        let (code, out, err) = ritualist(
            d.path(),
            &[
                "preview",
                "ro_birthday",
                "--customer",
                "C00400",
                "--date",
                "2027-02-03",
                "--channel",
                channel,
                "--send-to",
                to,
            ],
        );
        assert_eq!(code, 2, "{channel} {to}: {out}{err}");
        assert!(err.contains(&format!("--channel {channel}")), "{err}");
    }
    nothing_sent(d.path());
}

/// #24: a new Mother's Day ritual beside the shipped `holidays` ritual sent two Mother's Day
/// emails to the same customer the same day, and `{{links.preferences}}` rendered `href=""`
/// without an `http:` section; `check` said nothing about either.
#[test]
fn check_warns_about_two_rituals_for_one_occasion_and_unfillable_links() {
    let d = checkout();
    let rituals = d.path().join("config/rituals");
    let holidays = std::fs::read_to_string(rituals.join("holidays.yaml")).unwrap();
    std::fs::write(
        rituals.join("mothers_day.yaml"),
        holidays.replace(
            "ids: [womens_day, mothers_day, valentines_day, new_year]",
            "ids: [mothers_day]",
        ),
    )
    .unwrap();
    let (code, out, err) = ritualist(d.path(), &["check"]);
    assert_eq!(code, 0, "a warning, not an error: {out}{err}");
    assert!(
        err.contains("mothers_day.yaml:")
            && err.contains("`mothers_day` and `holidays` both send for the holiday `mothers_day`")
            && err.contains("holidays.yaml"),
        "{err}"
    );
    assert!(err.contains("1 warning(s)"), "{err}");
    std::fs::remove_file(rituals.join("mothers_day.yaml")).unwrap();

    let footer = d.path().join("templates/birthday/en/email.html.hbs");
    let html = std::fs::read_to_string(&footer).unwrap();
    std::fs::write(
        &footer,
        html.replacen(
            "{{/layout}}",
            "<a href=\"{{links.preferences}}\">Preferences</a>\n{{/layout}}",
            1,
        ),
    )
    .unwrap();
    let (code, _, err) = ritualist(d.path(), &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("email.html.hbs:")
            && err.contains("unknown variable `links.preferences`")
            && err.contains("add an `http:` section"),
        "{err}"
    );
}

/// #24: a ritual with templates in a language must say what customers read for it there.
#[test]
fn check_reports_a_missing_label_for_a_language_with_templates() {
    let d = checkout();
    edit(
        &d.path().join("config/rituals/birthday.yaml"),
        "  ru: Поздравления с днём рождения\n",
        "",
    );
    let (code, _, err) = ritualist(d.path(), &["check"]);
    assert_eq!(code, 0, "a warning: {err}");
    assert!(
        err.contains("birthday.yaml:15:")
            && err.contains("`birthday` has templates in `ru` but no label there")
            && err.contains("label: { ru: … }"),
        "{err}"
    );
}

#[test]
fn a_secret_in_yaml_is_refused_with_a_hint() {
    let d = checkout();
    edit(
        &d.path().join("config/ritualist.yaml"),
        "  email:\n    transport: outbox           # outbox | smtp\n",
        "  email:\n    transport: smtp\n    smtp:\n      host: relay.example\n      password: hunter2\n",
    );
    let (code, _, err) = ritualist(d.path(), &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown field `password`"), "{err}");
    assert!(err.contains("environment"), "{err}");
    assert!(!err.contains("hunter2"), "the secret is not echoed: {err}");
}

#[test]
fn orders_import_reports_unknown_customers_and_bad_rows_by_line() {
    let d = checkout();
    std::fs::write(
        d.path().join("people.csv"),
        "external_id,first_name,email\np1,Ana,ana@example.com\np2,Ion,ion@example.com\n",
    )
    .unwrap();
    let (code, out, err) = ritualist(d.path(), &["import", "customers", "people.csv"]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::write(
        d.path().join("orders.csv"),
        "order_id;customer;date;total;currency\n\
         o1;p1;2027-01-10 12:30;120,50;RON\n\
         o2;nobody;2027-01-11;10;RON\n\
         o3;p2;2027-01-12;abc;RON\n\
         o4;p2;2027-01-12T10:00:00+02:00;1 234,00;RON\n",
    )
    .unwrap();
    let (code, out, err) = ritualist(d.path(), &["import", "orders", "orders.csv"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("orders.csv:3: rejected: unknown customer `nobody`"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("orders.csv:4: rejected:") && l.contains("amount")),
        "{err}"
    );
    assert!(out.contains("2 inserted"), "{out}");
    let (_, out, _) = ritualist(d.path(), &["import", "orders", "orders.csv"]);
    assert!(
        out.contains("0 inserted, 2 updated"),
        "re-import is an upsert: {out}"
    );
}

#[test]
fn the_calendar_command_lists_floating_holidays_per_country() {
    let d = checkout();
    let (code, out, err) = ritualist(d.path(), &["calendar", "en-GB", "--year", "2026"]);
    assert_eq!(code, 0, "{err}");
    // Mothering Sunday is Western Easter − 21 days.
    assert!(
        out.lines()
            .any(|l| l.starts_with("2026-03-15") && l.contains("mothers_day")),
        "{out}"
    );
    let (code, out, _) = ritualist(
        d.path(),
        &[
            "calendar", "ru", "--year", "2026", "--locale", "ru", "--format", "json",
        ],
    );
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let easter = rows
        .iter()
        .find(|r| r["holiday"] == "orthodox_easter")
        .unwrap();
    assert_eq!(easter["date"], "2026-04-12");
    assert!(
        rows.iter()
            .any(|r| r["holiday"] == "mothers_day" && r["date"] == "2026-11-29"),
        "{out}"
    );
    let (code, _, err) = ritualist(d.path(), &["calendar", "ro-X"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `ro`?"), "{err}");
}
