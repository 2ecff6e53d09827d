"""A sign-up flood and the menu (BENCHMARKS.md, "A sign-up flood and the menu").

Usage: python3 load/signup_flood.py http://127.0.0.1:3000 <sign-up workers> <seconds>

Starts <workers> threads that sign up new members back to back while one client reads
GET /items every 10 ms, for <seconds>; prints how many sign-ups went through and the menu's
latency percentiles. Loopback only; bounded in time. Run cafe-local with
SIGNUP_LIMIT_PER_SOURCE raised, or the per-address throttle refuses the flood (as it should).
"""
import json, threading, time, urllib.request, statistics, sys, uuid
BASE = sys.argv[1]
FLOOD = int(sys.argv[2])   # sign-up workers
SECONDS = float(sys.argv[3])
stop = time.time() + SECONDS
signups = [0]
def post(path, body):
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r: return r.status
    except urllib.error.HTTPError as e: return e.code
def flood():
    while time.time() < stop:
        post("/member", {"name": "Flood", "email": f"f{uuid.uuid4().hex}@cafe.example", "phoneNumber": "010-1234-5678", "gender": "FEMALE", "birth": "1995-04-12", "password": "correct horse battery"})
        signups[0] += 1
threads = [threading.Thread(target=flood) for _ in range(FLOOD)]
for t in threads: t.start()
time.sleep(0.5)
lat = []
while time.time() < stop:
    t0 = time.perf_counter()
    with urllib.request.urlopen(BASE + "/items", timeout=30) as r: r.read()
    lat.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.01)
for t in threads: t.join()
lat.sort()
p = lambda q: lat[min(len(lat)-1, int(q*len(lat)))]
print(f"flood={FLOOD} signups={signups[0]} reads={len(lat)} p50={p(0.5):.1f}ms p90={p(0.9):.1f}ms p99={p(0.99):.1f}ms")
