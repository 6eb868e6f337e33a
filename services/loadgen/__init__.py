"""The load generator behind `yiju load` and `make bench`.

Open loop: every sentence has an intended send time from the rate profile and is sent then (or as
soon after as the generator can), and its latency is measured from that intended time, so a slow
platform cannot hide latency by slowing the generator down (no coordinated omission).

Modules: workload (sentences from the catalog, Zipf-weighted), users (synthetic users and their
credentials), profiles (constant, ramp, spike, steps), senders (HTTP, gRPC, Kafka intake), watcher
(completions read from the platform's Kafka topics), stats (percentiles), runner (puts them
together), report (table and JSON).
"""
