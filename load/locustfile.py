"""A cafe rush against cafe-local: browsing, signing up, logging in, ordering, paying in split
parts with Idempotency-Keys, and some cancellations, in the proportions of a morning queue.

Run through scripts/load.sh, which starts the server, bounds the run in time, refuses any host
that is not local, and keeps Locust's HTML report and CSV files. Each simulated customer signs up
once (its own email), logs in, and then loops over the weighted tasks below; every answer is
checked against the contract (status and envelope), so a wrong answer counts as a failure, not as
a fast success.
"""

import itertools
import random
import uuid

from locust import HttpUser, between, events, task

ITEMS = ["01JC0FFEE00000000000000C01", "01JC0FFEE00000000000000B02"]
PASSWORD = "correct horse battery"
_numbers = itertools.count(1)
# Distributed runs share the master's run id: each process adds its own, so that two workers'
# customers never sign up with the same email.
_process = uuid.uuid4().hex[:6]


@events.init_command_line_parser.add_listener
def _arguments(parser):
    parser.add_argument("--cafe-run-id", default=uuid.uuid4().hex[:8],
                        help="distinguishes the emails of one run from another's")


def _ok(response, status, what):
    """Marks the response failed unless it has `status` and the contract's success envelope."""
    if response.status_code != status:
        response.failure(f"{what}: {response.status_code} {response.text[:200]}")
        return None
    try:
        body = response.json()
    except ValueError:
        response.failure(f"{what}: not JSON")
        return None
    if body.get("status") != "success":
        response.failure(f"{what}: {body}")
        return None
    response.success()
    return body.get("result")


class Customer(HttpUser):
    """One customer in the rush."""

    wait_time = between(0.05, 0.3)

    def on_start(self):
        run = self.environment.parsed_options.cafe_run_id
        self.email = f"load-{run}-{_process}-{next(_numbers)}@cafe.example"
        self.token = None
        self.pending = []
        with self.client.post("/member", name="POST /member", catch_response=True, json={
            "name": "Load", "email": self.email, "phoneNumber": "010-1234-5678",
            "gender": "FEMALE", "birth": "1995-04-12", "password": PASSWORD,
        }) as response:
            _ok(response, 201, "sign-up")
        self.log_in()

    def log_in(self):
        with self.client.post("/auth/login", name="POST /auth/login", catch_response=True,
                              json={"email": self.email, "password": PASSWORD}) as response:
            result = _ok(response, 200, "log-in")
            if result:
                self.token = result["accessToken"]

    def auth(self):
        return {"authorization": f"Bearer {self.token}"}

    def place_order(self, item_id):
        """One unit of `item_id`; the order, or None (sold out counts as a real answer)."""
        with self.client.post("/order", name="POST /order", headers=self.auth(),
                              catch_response=True,
                              json={"items": [{"itemId": item_id, "quantity": 1}]}) as response:
            if response.status_code == 400 and "400OR000" in response.text:
                response.success()
                return None
            return _ok(response, 201, "order")

    def cancel(self, order, what):
        with self.client.delete(f"/order/{order['orderId']}/cancel",
                                name="DELETE /order/{orderId}/cancel",
                                headers=self.auth(), catch_response=True) as response:
            _ok(response, 200, what)

    @task(10)
    def browse(self):
        with self.client.get("/items", name="GET /items", catch_response=True) as response:
            _ok(response, 200, "items")
        item = random.choice(ITEMS)
        with self.client.get(f"/items/{item}", name="GET /items/{itemId}",
                             catch_response=True) as response:
            _ok(response, 200, "item")

    @task(4)
    def order_and_pay(self):
        if not self.token:
            return self.log_in()
        order = self.place_order(ITEMS[0])
        if not order:
            return
        total = order["totalPrice"]
        card = total * 2 // 3
        key = uuid.uuid4().hex
        body = {"orderId": order["orderId"], "payments": [
            {"amount": card, "type": "CARD"}, {"amount": total - card, "type": "POINT"}]}
        headers = {**self.auth(), "idempotency-key": key}
        for attempt in range(2):
            # The second send is the client's retry with the same key: the stored answer.
            with self.client.post("/payment", name="POST /payment", headers=headers,
                                  catch_response=True, json=body) as response:
                if response.status_code in (400, 409) and any(
                        code in response.text for code in ("400OR000", "409PA001")):
                    response.success()
                    return
                if not _ok(response, 200, f"payment (send {attempt + 1})"):
                    return
        if random.random() < 0.2:
            self.cancel(order, "cancel a paid order")

    @task(2)
    def order_then_cancel(self):
        if not self.token:
            return self.log_in()
        order = self.place_order(ITEMS[1])
        if order:
            self.cancel(order, "cancel a pending order")

    @task(2)
    def my_orders(self):
        if not self.token:
            return self.log_in()
        with self.client.get("/orders?limit=20", name="GET /orders", headers=self.auth(),
                             catch_response=True) as response:
            _ok(response, 200, "orders")

    @task(1)
    def log_in_again(self):
        self.log_in()
