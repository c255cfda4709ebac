"""Confluent's Python clients against sluice: the Schema Registry client, AvroSerializer and
AvroDeserializer from confluent-kafka, used exactly as a Python application would.

    avro_clients.py produce BOOTSTRAP REGISTRY_URL TOPIC COUNT
        registers Order through the serializer and produces COUNT records; prints the id
    avro_clients.py consume BOOTSTRAP REGISTRY_URL TOPIC COUNT
        reads COUNT records with AvroDeserializer; prints one JSON line each (Decimals as
        text, datetimes as ISO text, with the Python type names)
    avro_clients.py registry REGISTRY_URL
        SchemaRegistryClient: register, look up, compatibility and config; prints JSON
    avro_clients.py produce-unions BOOTSTRAP REGISTRY_URL TOPIC
        produces READINGS, records with unions of several types (primitives and a record)
    avro_clients.py produce-references BOOTSTRAP REGISTRY_URL TOPIC
        registers shop.Geo and shop.Address (which references Geo) under their own subjects,
        then produces CUSTOMERS with a schema that references Address; prints the ids
"""
import datetime
import decimal
import json
import sys

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
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

READING = json.dumps({
    "type": "record", "name": "Reading", "namespace": "lab",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "value", "default": None, "type": [
            "null", "int", "string",
            {"type": "record", "name": "Point",
             "fields": [{"name": "x", "type": "double"}, {"name": "y", "type": "double"}]}]},
        {"name": "unit", "type": ["string", "long"]},
    ],
})
READINGS = [
    {"id": 1, "value": 5, "unit": "cm"},
    {"id": 2, "value": "five", "unit": 7},
    {"id": 3, "value": None, "unit": "m"},
    {"id": 4, "value": {"x": 1.5, "y": -2.0}, "unit": "km"},
]

GEO = json.dumps({
    "type": "record", "name": "Geo", "namespace": "shop",
    "fields": [{"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}],
})
ADDRESS = json.dumps({
    "type": "record", "name": "Address", "namespace": "shop",
    "fields": [{"name": "city", "type": "string"}, {"name": "geo", "type": "shop.Geo"}],
})
CUSTOMER = json.dumps({
    "type": "record", "name": "Customer", "namespace": "shop",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "home", "type": "Address"},
        {"name": "billing", "type": ["null", "string", "shop.Address"], "default": None},
    ],
})
OSLO = {"city": "Oslo", "geo": {"lat": 59.9, "lon": 10.75}}
CUSTOMERS = [
    {"name": "ann", "home": OSLO, "billing": None},
    {"name": "bob", "home": OSLO, "billing": "same as home"},
    {"name": "cy", "home": OSLO, "billing": {"city": "Bergen", "geo": {"lat": 60.4, "lon": 5.3}}},
]


def produce_values(bootstrap, topic, serializer, values):
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value=serializer(value, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(30) == 0, "records left unsent"


def produce_unions(bootstrap, url, topic):
    registry = SchemaRegistryClient({"url": url})
    produce_values(bootstrap, topic, AvroSerializer(registry, READING), READINGS)
    print(json.dumps({"id": registry.get_latest_version(topic + "-value").schema_id}))


def produce_references(bootstrap, url, topic):
    registry = SchemaRegistryClient({"url": url})
    geo = registry.register_schema("shop.Geo", Schema(GEO, "AVRO"))
    address = registry.register_schema(
        "shop.Address", Schema(ADDRESS, "AVRO", [SchemaReference("shop.Geo", "shop.Geo", 1)]))
    customer = Schema(CUSTOMER, "AVRO", [SchemaReference("shop.Address", "shop.Address", 1)])
    produce_values(bootstrap, topic, AvroSerializer(registry, customer), CUSTOMERS)
    latest = registry.get_latest_version(topic + "-value")
    print(json.dumps({"geo": geo, "address": address, "id": latest.schema_id,
                      "references": [[r.name, r.subject, r.version]
                                     for r in latest.schema.references]}))


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
    elif mode == "produce-unions":
        produce_unions(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "produce-references":
        produce_references(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "consume":
        consume(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        registry(sys.argv[2])
