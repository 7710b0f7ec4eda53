#!/usr/bin/env python3
"""A coconnect AMQP consumer for a clearance or issuing system (docs/backend.md), with pika.

coconnect publishes each event persistent, with message_id = the event ID and type = its
kind, to the subscriber's exchange (and queue). Delivery is at least once: this consumer
de-duplicates by message_id, and acknowledges a message only after the event is safely
processed (here: appended to a JSON-lines file, flushed and fsync'd), so that a crash before
that gets it again.

Usage:
  amqp_consumer.py --url amqp://user:password@broker:5672/%2f --queue coconnect.events \
      --out events.jsonl [--exit-after N]
Each processed event is printed as "received <seq> <kind> <event_id>", a repeat as
"duplicate <event_id>".
"""
import argparse
import json
import os
import sys

import pika


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--out", required=True, help="JSON-lines file of processed events")
    parser.add_argument("--exit-after", type=int, default=0, help="stop after N new events (0: never)")
    args = parser.parse_args()

    seen = set()
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            seen = {json.loads(line)["event_id"] for line in f if line.strip()}

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=50)
    new = 0

    def on_message(ch, method, properties, body):
        nonlocal new
        event = json.loads(body)
        if properties.message_id in seen:
            print(f"duplicate {properties.message_id}", flush=True)
        else:
            # Process the event here, durably, before acknowledging it.
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
                f.flush()
                os.fsync(f.fileno())
            seen.add(properties.message_id)
            new += 1
            print(f"received {event['seq']} {properties.type} {properties.message_id}", flush=True)
        ch.basic_ack(delivery_tag=method.delivery_tag)
        if args.exit_after and new >= args.exit_after:
            ch.stop_consuming()

    channel.basic_consume(queue=args.queue, on_message_callback=on_message)
    channel.start_consuming()
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
