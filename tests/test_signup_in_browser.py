"""A reader signs up in a real browser (Debian's chromium), confirms from the email, and is in."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import Subscriber
from tests.browser import artifact
from tests.databases import database_url
from tests.web_server import link_in, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("browser-web")) as running:
        yield running


def status_of(server, address: str) -> str | None:
    with Session(make_engine(database_url(server.directory))) as session:
        row = session.exec(select(Subscriber).where(Subscriber.email == address)).first()
        return row.status if row else None


@pytest.mark.parametrize(
    ("width", "address"), [(1280, "desk@example.com"), (375, "phone@example.com")], ids=["desktop", "phone"]
)
def test_signup_confirm_from_the_email_and_become_active(browser, server, width, address):
    # JavaScript off: the whole flow is plain HTML forms.
    context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto(server.url + "/")
    field = page.get_by_label("Your email address")
    field.focus()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none", (
        "focus is visible"
    )
    field.fill(address)
    page.screenshot(path=artifact(f"signup-{width}.png"), full_page=True)
    if width == 375:
        field.press("Enter")  # the keyboard alone submits the form
    else:
        page.get_by_role("button", name="Get the weekly verdicts").click()
    page.wait_for_url("**/check-your-inbox")
    assert page.get_by_role("heading", name="Check your inbox").is_visible()
    assert status_of(server, address) == "pending"

    confirm_path = link_in(server.mail_to(address), "/confirm/")
    page.goto(server.url + confirm_path)
    assert status_of(server, address) == "pending", "opening the link alone confirms nothing"
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="You're subscribed").wait_for()
    assert status_of(server, address) == "active"
    page.screenshot(path=artifact(f"confirmed-{width}.png"), full_page=True)
    context.close()


@pytest.mark.parametrize("width", [375, 1280])
def test_signup_page_fits_the_screen_and_text_contrast_is_readable(browser, server, width):
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(server.url + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    ratio = page.evaluate("""() => {
        const rgb = s => s.match(/\\d+/g).slice(0, 3).map(Number).map(v => v / 255)
            .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
        const lum = s => { const [r, g, b] = rgb(s); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        const button = document.querySelector('button');
        const style = getComputedStyle(button);
        const [a, b] = [lum(style.color), lum(style.backgroundColor)].sort((x, y) => y - x);
        return (a + 0.05) / (b + 0.05);
    }""")
    assert ratio >= 4.5, f"button text contrast {ratio:.1f}:1"
    page.close()
