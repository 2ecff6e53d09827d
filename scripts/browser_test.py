#!/usr/bin/env python3
"""The three web screens in a real browser (issue 28): Debian's chromium, headless, driven by
Playwright for Python (never `playwright install`: the browser is /usr/bin/chromium).

Starts cafe-local (the debug binary `cargo test` built) on a free port with a development admin,
then: the display and the barista board are opened; a customer signs up, orders two items and pays
in two parts; the board shows the order within 2 s; the barista starts it and marks it ready; the
customer's card and the display show it ready within 2 s. No console error on any screen, no
horizontal scrolling at 360 px. Screenshots of each screen at 360 and 1280 px go to --out; with
--docs, the 1280 px ones are copied there too (docs/screens/, committed for the README).

    scripts/browser_test.py --binary target/debug/cafe-local --out target/screens [--docs docs/screens]
"""
import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CAFE_CHROMIUM", "/usr/bin/chromium")
# Without the networking flags the closed network refuses chromium's background connections.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WITHIN_S = 2.0
# The customer's password (sign-up, and the log-in after a restore).
PASSWORD = "a good passphrase"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, log):
    for _ in range(300):
        if process.poll() is not None:
            sys.exit(f"cafe-local exited early:\n{open(log).read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("cafe-local did not start")


def post_status(url, body):
    """The HTTP status of a JSON POST."""
    request = urllib.request.Request(
        url,
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def live_channel_present(base):
    """Whether this server has the live channel: POST /live/ticket without a token answers 401
    where it exists and 404 (no such route) where it does not."""
    request = urllib.request.Request(f"{base}/live/ticket", method="POST", data=b"")
    try:
        urllib.request.urlopen(request, timeout=5)
        return True
    except urllib.error.HTTPError as e:
        return e.code != 404


def live_protocol(context, base, order_id, watch):
    """The screens' live client (site/js/live.js) against the live protocol, with the channel
    mocked in the browser (the ticket route and the WebSocket): the ticket in the URL, the
    subscriptions, a re-read after connecting, pushes applied once and stale versions dropped,
    the 5-minute ping, and polling again when the socket closes."""
    import json
    import re

    class Channel:
        def __init__(self, page):
            self.sockets, self.received = [], []
            page.route_web_socket(re.compile(r"/live(\?|$)"), self.accept)

        def accept(self, ws):
            self.sockets.append(ws)

            def on_message(text):
                message = json.loads(text)
                self.received.append(message)
                if message.get("action") == "subscribe":
                    ws.send(json.dumps({"type": "subscribed", "topic": message["topic"], "heartbeatSeconds": 300}))
                elif message.get("action") == "ping":
                    ws.send(json.dumps({"type": "pong"}))
            ws.on_message(on_message)

        def push(self, message):
            self.sockets[-1].send(json.dumps(message))

    def counter(page, pattern):
        seen = []
        page.on("request", lambda r: seen.append(r.url) if re.search(pattern, r.url) else None)
        return seen

    def settle(page):
        page.wait_for_timeout(400)

    # The pickup display: anonymous, no ticket.
    display = watch(context.new_page(), "display (live)")
    channel = Channel(display)
    display.clock.install()
    reads = counter(display, r"/shop/board$")
    display.goto(f"{base}/display.html")
    display.get_by_text("Live", exact=True).wait_for()
    assert channel.received[0] == {"action": "subscribe", "topic": "display"}, channel.received
    assert "ticket=" not in channel.sockets[0].url, channel.sockets[0].url
    settle(display)
    assert len(reads) >= 2, f"read at start and again once connected: {reads}"
    before = len(reads)
    channel.push({"type": "display", "pickupNumber": 1, "status": "READY", "version": 3})
    settle(display)
    assert len(reads) == before + 1, f"a push re-reads the board once: {len(reads) - before}"
    channel.push({"type": "display", "pickupNumber": 1, "status": "PREPARING", "version": 2})
    settle(display)
    assert len(reads) == before + 1, "a stale version is dropped"
    channel.push({"type": "display", "pickupNumber": 1, "status": "PICKED_UP", "version": 4})
    channel.push({"type": "display", "pickupNumber": 1, "status": "COMPLETED", "version": 1})
    settle(display)
    assert len(reads) == before + 3, "after a number is done with, it is the next day's order"
    display.clock.run_for(5 * 60 * 1000)
    settle(display)
    assert {"action": "ping"} in channel.received, channel.received
    channel.sockets[-1].close()
    display.get_by_text(re.compile("Updating every")).wait_for()
    before = len(reads)
    display.clock.run_for(3000)
    settle(display)
    assert len(reads) > before, "polls once the socket is gone"
    display.close()

    # The customer: a ticket first (single use, in the socket's URL), then their orders.
    customer = watch(context.new_page(), "customer (live)")
    tickets = []

    def ticket(route):
        tickets.append(route.request.headers.get("authorization", ""))
        route.fulfill(status=200, content_type="application/json", body=json.dumps({
            "ticket": f"t{len(tickets)}", "expiresAt": "2030-01-01T00:00:00Z",
            "url": f"{base.replace('http', 'ws')}/live"}))
    customer.route("**/live/ticket", ticket)
    channel = Channel(customer)
    reads = counter(customer, re.escape(f"/order/{order_id}") + "$")
    customer.goto(f"{base}/")
    customer.locator("#orders li").filter(has_text="₩26,500").get_by_role(
        "button", name=re.compile("^Show this order")).click()
    customer.get_by_text("Updates live.").wait_for()
    assert tickets and tickets[0].startswith("Bearer "), tickets
    assert channel.sockets[0].url.endswith("/live?ticket=t1"), channel.sockets[0].url
    assert {"action": "subscribe", "topic": "orders"} in channel.received, channel.received
    settle(customer)
    before = len(reads)
    channel.push({"type": "order", "orderId": order_id, "status": "PICKED_UP", "pickupNumber": 1,
                  "version": 4, "at": "2030-01-01T00:00:00Z"})
    settle(customer)
    assert len(reads) == before + 1, f"a push re-reads the order once: {len(reads) - before}"
    channel.push({"type": "order", "orderId": order_id, "status": "READY", "pickupNumber": 1,
                  "version": 3, "at": "2030-01-01T00:00:00Z"})
    settle(customer)
    assert len(reads) == before + 1, "a stale version is dropped"
    customer.close()
    print("live protocol: ticket, subscriptions, re-read on connect, pushes once, stale dropped, "
          "ping, polling after a close")


def board_controls(context, base, watch):
    """The barista's other taps: restock, take an item off sale and back, close and open."""
    page = watch(context.new_page(), "board (controls)")
    page.goto(f"{base}/board.html")
    cola = page.locator('#items tr[data-item="Cola"]')
    cola.wait_for()
    stock = int(cola.locator("td.stock").get_attribute("data-stock"))
    cola.get_by_label("Units of Cola to add").fill("5")
    cola.get_by_role("button", name="Add stock of Cola").click()
    page.locator(f'#items tr[data-item="Cola"] td[data-stock="{stock + 5}"]').wait_for()
    page.get_by_role("button", name="Take off sale: Book").click()
    page.get_by_role("button", name="Put on sale: Book").click()
    page.get_by_role("button", name="Take off sale: Book").wait_for()
    page.get_by_label("Message for customers (optional)").fill("Back at 2pm")
    page.get_by_role("button", name="Close the shop").click()
    page.locator("#shop-state").filter(has_text="Closed · Back at 2pm").wait_for()
    page.get_by_label("Message for customers (optional)").fill("")
    page.get_by_role("button", name="Open the shop").click()
    page.locator("#shop-state").filter(has_text="Open").wait_for()
    page.close()
    print(f"board: restocked Cola {stock} → {stock + 5}, Book off sale and back, shop closed and opened")


def customer_account(context, base, watch):
    """The customer's other taps: cancel an unpaid order, withdraw and restore."""
    page = watch(context.new_page(), "customer (account)")
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{base}/")
    page.get_by_role("button", name="Add Cola to the cart").click()
    page.get_by_role("button", name="Place order").click()
    page.locator('#order-status[data-status="PENDING_PAYMENT"]').wait_for()
    page.locator("#order-card").get_by_role("button", name="Cancel order").click()
    page.locator('#order-status[data-status="CANCELLED"]').wait_for()
    page.get_by_role("button", name="Withdraw membership").click()
    page.locator("#account-state").filter(has_text="Withdrawn on").wait_for()
    page.get_by_role("button", name="Restore membership").click()
    # The withdrawal ended the sessions from before it: the screen asks to log in again, with
    # the email filled in.
    page.locator("#login-notice").filter(has_text="membership is restored").wait_for()
    login = page.locator("#login-form")
    login.get_by_label("Password").fill(PASSWORD)
    login.get_by_role("button", name="Log in").click()
    page.locator("#account-state").filter(has_text="member in service").wait_for()
    page.close()
    print("customer: an unpaid order cancelled, the membership withdrawn and restored (then logged in again)")


def error_paths(context, base):
    """What a user sees when things go wrong (on a page whose console is not held to "no
    errors": Chrome logs every 4xx answer there). An expired access token is refreshed silently;
    a failed log-in shows the contract's message in words."""
    import json

    page = context.new_page()
    page.goto(f"{base}/display.html")
    stored = json.loads(page.evaluate("localStorage.getItem('cafe.session.customer')"))
    stored["accessToken"] = "expired.or.tampered"
    page.evaluate("s => localStorage.setItem('cafe.session.customer', s)", json.dumps(stored))
    with page.expect_response(lambda r: r.url.endswith("/auth/refresh")) as refreshed:
        page.goto(f"{base}/")
        page.locator("#signed-in").wait_for()
    assert refreshed.value.status == 200, refreshed.value.text()
    page.locator("#who").filter(has_text="Mina Park").wait_for()
    now = json.loads(page.evaluate("localStorage.getItem('cafe.session.customer')"))
    assert now["accessToken"] not in ("", "expired.or.tampered"), "a new access token was stored"

    # Log out ends the session on the server too: its refresh token is refused afterwards.
    with page.expect_response(lambda r: r.url.endswith("/auth/logout")) as logged_out:
        page.get_by_role("button", name="Log out").click()
    assert logged_out.value.status == 200, logged_out.value.status
    page.locator("#signed-out").wait_for()
    answer = post_status(f"{base}/auth/refresh", {"refreshToken": now["refreshToken"]})
    assert answer == 401, f"the logged-out refresh token answered {answer}"
    request = urllib.request.Request(
        f"{base}/auth/login", method="POST", headers={"content-type": "application/json"},
        data=json.dumps({"email": "nobody@example.com", "password": "not the password"}).encode())
    try:
        urllib.request.urlopen(request, timeout=5)
        expected = None
    except urllib.error.HTTPError as e:
        expected = json.loads(e.read())["error"]["detailMessage"]
    login = page.locator("#login-form")
    login.get_by_label("Email").fill("nobody@example.com")
    login.get_by_label("Password").fill("not the password")
    login.get_by_role("button", name="Log in").click()
    error = page.locator("#login-error")
    error.wait_for()
    assert expected and error.inner_text() == expected, (error.inner_text(), expected)
    page.close()
    print(f"errors in words: a failed log-in shows {expected!r}; an expired token is refreshed silently")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--docs")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    admin_email = "barista@cafe.test"
    admin_password = secrets.token_urlsafe(12)
    work = tempfile.mkdtemp(prefix="cafe-browser.")
    log = os.path.join(work, "cafe-local.log")
    env = dict(os.environ, CAFE_DEV_ADMIN=f"{admin_email}:{admin_password}", RUST_LOG="warn")
    env.pop("CAFE_ENV", None)
    env.pop("CAFE_BACKEND", None)
    server = subprocess.Popen([args.binary, "--port", str(port)], env=env,
                              stdout=open(log, "w"), stderr=subprocess.STDOUT)
    measured = {}
    try:
        wait_for_port(port, server, log)
        live = live_channel_present(base)
        print(f"cafe-local on {base}; live channel {'present' if live else 'absent: the screens poll'}")
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                os.path.join(work, "profile"),  # a fresh --user-data-dir
                executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1280, "height": 900})
            context.set_default_timeout(10000)
            errors = []

            def watch(page, name):
                def on_console(msg):
                    if msg.type != "error":
                        return
                    url = (msg.location or {}).get("url", "")
                    # Without the live channel, its ticket's 404 and the refused socket are the
                    # expected fallback to polling; with it, they are errors like any other.
                    if not live and ("/live" in url or "/live" in msg.text):
                        return
                    errors.append(f"{name}: console error: {msg.text} ({url})")
                page.on("console", on_console)
                page.on("pageerror", lambda e: errors.append(f"{name}: uncaught: {e}"))
                return page

            display = watch(context.pages[0] if context.pages else context.new_page(), "display")
            display.goto(f"{base}/display.html")
            board = watch(context.new_page(), "board")
            board.goto(f"{base}/board.html")
            board.get_by_label("Email").fill(admin_email)
            board.get_by_label("Password").fill(admin_password)
            board.get_by_role("button", name="Log in").click()
            board.locator("#queue").wait_for()
            board.get_by_text("No orders waiting.").wait_for()

            customer = watch(context.new_page(), "customer")
            customer.set_viewport_size({"width": 360, "height": 800})
            customer.goto(f"{base}/")
            signup = customer.locator("#signup-form")
            signup.get_by_label("Name").fill("Mina Park")
            signup.get_by_label("Email").fill(f"mina.{secrets.token_hex(4)}@example.com")
            signup.get_by_label("Mobile number").fill("010-1234-5678")
            signup.get_by_label("Gender").select_option("FEMALE")
            signup.get_by_label("Date of birth").fill("1998-04-03")
            signup.get_by_label("Password (8–128 characters)").fill(PASSWORD)
            signup.get_by_role("button", name="Sign up").click()
            customer.locator("#signed-in").wait_for()

            # Two items: a cola and a book (₩1,500 + ₩25,000).
            customer.get_by_role("button", name="Add Cola to the cart").click()
            customer.get_by_role("button", name="Add Book to the cart").click()
            customer.get_by_role("button", name="Place order").click()
            customer.locator("#pay-card").wait_for()
            assert customer.locator("#pay-total").inner_text() == "₩26,500", customer.locator("#pay-total").inner_text()
            # Two parts: ₩20,000 by card, the rest by Kakao Pay.
            customer.get_by_label("Part 1 amount (₩)").fill("20000")
            customer.get_by_role("button", name="Add a part").click()
            assert customer.get_by_label("Part 2 amount (₩)").input_value() == "6500"
            customer.get_by_label("Part 2 type").select_option("KAKAO_PAY")
            payments = []
            customer.on("request", lambda r: payments.append(r) if r.url.endswith("/payment") else None)
            with customer.expect_response(lambda r: r.url.endswith("/payment")) as paid:
                # A double tap: the button is disabled while the first runs, so one request.
                customer.locator("#pay-form").get_by_role("button", name="Pay", exact=True).dblclick()
            assert paid.value.status == 200, paid.value.text()
            paid_at = time.monotonic()
            order_id = paid.value.json()["result"]["orderId"]
            customer.wait_for_timeout(300)
            assert len(payments) == 1, f"a double tap sent {len(payments)} payments"
            card = customer.locator("#order-status")
            customer.locator('#order-status[data-status="COMPLETED"]').wait_for()
            number = customer.locator("#pickup-number").inner_text()
            print(f"paid in two parts; pickup number {number}")

            row = board.locator("#queue li[data-status]").filter(has_text=f"#{number}")
            row.wait_for(timeout=WITHIN_S * 1000)
            measured["board shows the paid order"] = time.monotonic() - paid_at
            display.locator(f'#making li[data-number="{number}"]').wait_for(timeout=WITHIN_S * 1000)

            def step_to(status):
                return lambda r: r.url.endswith("/status") and r.request.post_data_json == {"status": status}

            with board.expect_response(step_to("PREPARING")) as started:
                row.get_by_role("button", name=f"Start: order #{number}").click()
            assert started.value.status == 200, started.value.text()
            with board.expect_response(step_to("READY")) as readied:
                board.locator('#queue li[data-status="PREPARING"]').filter(has_text=f"#{number}") \
                    .get_by_role("button", name=f"Ready: order #{number}").click()
            assert readied.value.status == 200, readied.value.text()
            ready_at = time.monotonic()
            board.locator('#queue li[data-status="READY"]').filter(has_text=f"#{number}").wait_for()
            customer.locator('#order-status[data-status="READY"]').wait_for(timeout=WITHIN_S * 1000)
            measured["customer's card shows READY"] = time.monotonic() - ready_at
            assert card.inner_text() == "Ready for pickup", card.inner_text()
            display.locator(f'#ready li[data-number="{number}"]').wait_for(timeout=WITHIN_S * 1000)
            measured["display shows the number ready"] = time.monotonic() - ready_at
            assert display.locator(f'#making li[data-number="{number}"]').count() == 0

            for name, page in (("customer", customer), ("board", board), ("display", display)):
                for width in (360, 1280):
                    page.set_viewport_size({"width": width, "height": 800 if width == 360 else 900})
                    page.wait_for_timeout(200)
                    overflow = page.evaluate("document.documentElement.scrollWidth")
                    if overflow > width:
                        errors.append(f"{name}: {overflow} px wide at a {width} px viewport (scrolls sideways)")
                    path = os.path.join(args.out, f"{name}-{width}.png")
                    page.screenshot(path=path, full_page=True)
                    if args.docs and width == 1280:
                        os.makedirs(args.docs, exist_ok=True)
                        shutil.copy(path, os.path.join(args.docs, f"{name}.png"))
            # The scenario's pages go before the next ones change the session they hold.
            for page in (customer, board, display):
                page.close()
            board_controls(context, base, watch)
            customer_account(context, base, watch)
            live_protocol(context, base, order_id, watch)
            error_paths(context, base)
            context.close()
        for what, seconds in measured.items():
            print(f"  {what}: {seconds:.2f} s after the change (limit {WITHIN_S:.0f} s)")
        print(f"screenshots: {args.out}")
        if errors:
            sys.exit("browser test failed:\n  " + "\n  ".join(errors))
        print("browser test passed: no console errors on any screen")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
