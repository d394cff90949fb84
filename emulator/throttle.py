"""Canvas's request throttle for LTI Advantage calls (facts sheet, section 9).

A leaky bucket per developer key (client_id), as canvas-lms ``RequestThrottle`` keeps it:
every request is charged ``up_front_cost`` (50) when it arrives; if the bucket then holds
``hwm`` (600) units or more the request is refused with 403 ``text/plain``
``403 Forbidden (Rate Limit Exceeded)`` and ``X-Rate-Limit-Remaining: 0.0``, without reaching
the service. When a request ends its up-front charge is taken back and its real cost (CPU
seconds, as Canvas charges user CPU plus database time, not wall time) stays. The bucket
leaks ``outflow`` (10) units per second and never holds more than ``maximum`` (800).

So with the defaults 12 requests of one client can be in flight (the 12th finds
600 minus whatever leaked since the first: any time at all lets it pass); a 13th is refused.
Off by default: ``platform.throttle.enabled = True`` switches it on.
"""

import threading
import time


class Bucket:
    __slots__ = ("count", "touched")

    def __init__(self):
        self.count = 0.0
        self.touched = None


class Throttle:
    """Thread-safe leaky buckets keyed by client_id, with Canvas's default settings."""

    def __init__(self, clock=time.monotonic):
        self._lock = threading.Lock()
        self.clock = clock
        self.enabled = False
        self.hwm = 600.0
        self.maximum = 800.0
        self.outflow = 10.0
        self.up_front_cost = 50.0
        self.extra_cost = 0.0  # added to every finished request's cost (Canvas's extra cost)
        self.refusals = 0  # requests the bucket refused
        self.peak_in_flight = 0  # most requests of one client in flight at once
        self._buckets = {}
        self._in_flight = {}

    def reset(self):
        """Empty every bucket and zero the counters (the switch keeps its state)."""
        with self._lock:
            self._buckets.clear()
            self._in_flight.clear()
            self.refusals = 0
            self.peak_in_flight = 0

    def _increment(self, client, amount):
        """Leak since the last touch, then add ``amount`` (Canvas's ``increment_bucket``)."""
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = Bucket()
        now = self.clock()
        if bucket.touched is not None:
            bucket.count = max(0.0, bucket.count - (now - bucket.touched) * self.outflow)
        bucket.touched = now
        bucket.count = min(self.maximum, max(0.0, bucket.count + amount))
        return bucket

    def reserve(self, client):
        """Charge the up-front cost; True if the request may proceed, False if refused.

        A refused request still holds its charge until ``release`` (as in Canvas, where the
        throttled answer is produced inside ``reserve_capacity``).
        """
        with self._lock:
            bucket = self._increment(client, self.up_front_cost)
            allowed = bucket.count < self.hwm
            if allowed:
                n = self._in_flight.get(client, 0) + 1
                self._in_flight[client] = n
                self.peak_in_flight = max(self.peak_in_flight, n)
            else:
                self.refusals += 1
            return allowed

    def release(self, client, cost, allowed=True):
        """Take back the up-front charge, keep ``cost``; the units remaining afterwards."""
        with self._lock:
            if allowed:
                self._in_flight[client] = max(0, self._in_flight.get(client, 1) - 1)
            bucket = self._increment(client, cost + self.extra_cost - self.up_front_cost)
            return self.hwm - bucket.count

    def remaining(self, client):
        """``hwm - count`` after leaking until now (what ``X-Rate-Limit-Remaining`` says)."""
        with self._lock:
            return self.hwm - self._increment(client, 0.0).count

    def in_flight(self, client):
        with self._lock:
            return self._in_flight.get(client, 0)
