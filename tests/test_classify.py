"""The human/machine rules, as the pure function they are, and the user-agent list they read."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.tracking import agents
from newsletter.tracking.classify import CLICK, OPEN, Hit, Rules, classify

RULES = Rules()  # the defaults: window 60 s, 3 links in 2 s, 10 s around a decoy hit
DELIVERED = 1_000_000.0
LATER = DELIVERED + 3600  # an hour after delivery: outside the machine window
CHROME = "browser"


def reasons(hits, delivered=DELIVERED, rules=RULES) -> list[str]:
    return [verdict.reason if verdict.machine else "human" for verdict in classify(hits, delivered, rules)]


def test_a_person_who_reads_then_clicks_two_links_seconds_apart_is_human():
    hits = [Hit(LATER, "a", CLICK), Hit(LATER + 4, "b", CLICK), Hit(LATER + 30, "a", CLICK)]
    assert reasons(hits) == ["human", "human", "human"]


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "head"])
def test_head_and_options_are_machines(method):
    assert reasons([Hit(LATER, "a", CLICK, method=method)]) == [f"method:{method.upper()}"]


def test_a_prefetch_is_a_machine():
    assert reasons([Hit(LATER, "a", CLICK, prefetch=True)]) == ["prefetch"]


@pytest.mark.parametrize("agent", ["scanner", "headless", "library", "preview", "crawler", "none"])
def test_machine_agents_are_machines_for_clicks_and_opens(agent):
    assert reasons([Hit(LATER, "a", CLICK, agent=agent), Hit(LATER + 600, "o", OPEN, agent=agent)]) == [
        f"agent:{agent}",
        f"agent:{agent}",
    ]


def test_an_image_proxy_opens_for_a_person_but_never_clicks_for_one():
    assert reasons([Hit(LATER, "o", OPEN, agent="image-proxy")]) == ["human"]
    assert reasons([Hit(LATER, "a", CLICK, agent="image-proxy")]) == ["agent:image-proxy"]


def test_apple_privacy_proxy_opens_are_machine_opens_never_human():
    assert reasons([Hit(LATER, "o", OPEN, agent="privacy-proxy")]) == ["agent:privacy-proxy"]


def test_a_decoy_hit_makes_every_hit_of_its_burst_a_machines_but_not_later_ones():
    hits = [
        Hit(LATER - 3, "a", CLICK),  # before the decoy, within 10 s
        Hit(LATER, "decoy", CLICK, decoy=True),
        Hit(LATER + 8, "b", CLICK),
        Hit(LATER + 120, "a", CLICK),  # the person, two minutes on
    ]
    assert reasons(hits) == ["decoy-burst", "decoy", "decoy-burst", "human"]


def test_many_links_within_a_couple_of_seconds_are_a_burst():
    hits = [Hit(LATER + i * 0.4, link, CLICK) for i, link in enumerate("abc")]
    assert reasons(hits) == ["burst"] * 3
    # the same link three times is a double click, not a burst; two links are a person too
    assert reasons([Hit(LATER + i * 0.4, "a", CLICK) for i in range(3)]) == ["human"] * 3
    assert reasons([Hit(LATER, "a", CLICK), Hit(LATER + 0.5, "b", CLICK)]) == ["human"] * 2


def test_the_burst_rule_follows_its_settings():
    hits = [Hit(LATER + i * 1.5, link, CLICK) for i, link in enumerate("abc")]
    assert reasons(hits) == ["human"] * 3  # 3 s from first to last: no burst in 2 s
    assert reasons(hits, rules=Rules(burst_seconds=3.5)) == ["burst"] * 3
    assert reasons(hits[:2], rules=Rules(burst_links=2, burst_seconds=2)) == ["burst"] * 2


def test_opens_do_not_count_towards_a_burst():
    hits = [Hit(LATER, "a", CLICK), Hit(LATER + 0.2, "o", OPEN), Hit(LATER + 0.4, "b", CLICK)]
    assert reasons(hits) == ["human"] * 3


def test_hits_soon_after_delivery_are_machines_and_a_window_of_0_turns_the_rule_off():
    hits = [Hit(DELIVERED + 5, "a", CLICK), Hit(DELIVERED + 59, "b", CLICK), Hit(DELIVERED + 61, "c", CLICK)]
    assert reasons(hits) == ["early", "early", "human"]
    assert reasons(hits, rules=Rules(machine_window=0)) == ["human"] * 3
    assert reasons(hits, delivered=None) == ["human"] * 3  # no delivery known: the rule cannot apply


def test_verdicts_come_back_in_the_order_given_whatever_the_times():
    hits = [Hit(LATER + 8, "b", CLICK), Hit(LATER + 120, "a", CLICK), Hit(LATER, "d", CLICK, decoy=True)]
    assert reasons(hits) == ["decoy-burst", "human", "decoy"]


def test_the_first_rule_that_applies_is_the_reason_kept():
    assert reasons([Hit(DELIVERED + 1, "d", CLICK, method="HEAD", agent="scanner", decoy=True)]) == [
        "method:HEAD"
    ]


# --- the user-agent list -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
            "browser",
        ),
        ("Mozilla/5.0", "privacy-proxy"),
        ("mozilla/5.0 ", "privacy-proxy"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36", "headless"),
        ("Barracuda Sentinel (EE)", "scanner"),
        ("python-requests/2.32.3", "library"),
        ("curl/8.5.0", "library"),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "preview"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler"),
        ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)", "office"),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            "image-proxy",
        ),
        ("", "none"),
        (None, "none"),
        ("x" * 100_000, "browser"),
    ],
)
def test_agents_are_classed_by_the_maintained_list(agent, expected):
    assert agents.agent_class(agent) == expected


def test_every_entry_of_the_list_names_its_source_and_a_class_it_defines():
    listed = agents.default_list()
    text = agents.AGENTS_FILE.read_text()
    entries = text.count("\n[[agent]]\n")
    assert entries == len(listed.classes_by_match) + len(listed.exact) == text.count("\nsource = ")
    assert set(listed.classes_by_match.values()) | set(listed.exact.values()) <= set(listed.machine_for)


def test_an_entry_without_a_source_is_refused(tmp_path: Path):
    broken = tmp_path / "agents.toml"
    broken.write_text('[classes]\nscanner = ["click"]\n\n[[agent]]\nmatch = "X"\nclass = "scanner"\n')
    with pytest.raises(ValueError, match="agent 1 needs"):
        agents.load(broken)
