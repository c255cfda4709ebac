"""Confluent's Python clients against sluice: the Schema Registry client, AvroSerializer and
AvroDeserializer from confluent-kafka, used exactly as a Python application would.

    avro_clients.py produce BOOTSTRAP REGISTRY_URL TOPIC COUNT
        registers Order through the serializer and produces COUNT records; prints the id
    avro_clients.py consume BOOTSTRAP REGISTRY_URL TOPIC COUNT
        reads COUNT records with AvroDeserializer; prints one JSON line each (Decimals as
        text, datetimes as ISO text, with the Python type names)
    avro_clients.py registry REGISTRY_URL
        SchemaRegistryClient: register, look up, compatibility and config; prints JSON
"""
import datetime
import decimal
import json
import sys

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

ORDER = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                    "precision": 10, "scale": 2}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
})


def produce(bootstrap, url, topic, count):
    registry = SchemaRegistryClient({"url": url})
    serializer = AvroSerializer(registry, ORDER)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        order = {"id": i, "item": "item-%d" % i,
                 "amount": decimal.Decimal("%d.%02d" % (i * 1000 + 7, i % 100)),
                 "note": None if i % 2 else "note %d" % i}
        value = serializer(order, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0, "records left unsent"
    print(json.dumps({"id": registry.get_latest_version(topic + "-value").schema_id}))


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, decimal.Decimal):
        return {"Decimal": format(value, "f")}
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"date": value.isoformat()}
    return value


def consume(bootstrap, url, topic, count):
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": url}))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-avro-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen = 0
    idle = 0
    while seen < count and idle < 600:
        msg = consumer.poll(0.1)
        if msg is None or msg.error():
            idle += 1
            continue
        value = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
        print(json.dumps(plain(value)), flush=True)
        seen += 1
    consumer.close()
    assert seen == count, "read %d of %d records" % (seen, count)


def registry(url):
    client = SchemaRegistryClient({"url": url})
    v1 = '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}'
    add_default = ('{"type":"record","name":"R","fields":[{"name":"a","type":"int"},'
                   '{"name":"b","type":["null","string"],"default":null}]}')
    add_required = ('{"type":"record","name":"R","fields":[{"name":"a","type":"int"},'
                    '{"name":"b","type":"string"}]}')
    out = {}
    out["id"] = client.register_schema("py-r", Schema(v1, "AVRO"))
    out["again"] = client.register_schema("py-r", Schema(v1, "AVRO"))
    out["fetched"] = json.loads(client.get_schema(out["id"]).schema_str)
    out["lookup_version"] = client.lookup_schema("py-r", Schema(v1, "AVRO")).version
    out["compatible_add_default"] = client.test_compatibility("py-r", Schema(add_default, "AVRO"))
    out["compatible_add_required"] = client.test_compatibility("py-r", Schema(add_required, "AVRO"))
    client.set_compatibility("py-r", "FORWARD")
    out["level"] = client.get_compatibility("py-r")
    out["forward_add_required"] = client.test_compatibility("py-r", Schema(add_required, "AVRO"))
    try:
        client.get_latest_version("py-missing")
    except Exception as e:  # SchemaRegistryError
        out["missing"] = [e.http_status_code, e.error_code]
    out["subjects"] = client.get_subjects()
    print(json.dumps(out))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif mode == "consume":
        consume(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        registry(sys.argv[2])
