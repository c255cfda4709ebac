"""A connector's whole lifecycle through kafka-connect-py, a Python client of Kafka Connect's
REST API (from PyPI), against the worker at argv[1]. Each step asserts what Kafka Connect
answers; the last line printed is a JSON summary for the Rust test.

usage: lifecycle.py URL INPUT OUTPUT OUTPUT2
"""
import json
import sys
import time

from kafka_connect import KafkaConnect

url, source_file, sink_file, sink_file2 = sys.argv[1:5]
kc = KafkaConnect(url=url)
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


def wait(what, check, limit=60):
    deadline = time.time() + limit
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.2)


def state(name):
    status = kc.get_connector_status(name)
    tasks = [t["state"] for t in status["tasks"]]
    return status["connector"]["state"], tasks


def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


summary = {}
info = kc.get_cluster_info()
assert info["version"] and info["kafka_cluster_id"], info
summary["cluster"] = sorted(info)

classes = {n for p in kc.list_connector_plugins() for n in [p["class"], *p.get("aliases", [])]}
assert SOURCE in classes and SINK in classes, classes

good = {"connector.class": SINK, "topics": "kc-lines", "file": sink_file}
checked = kc.validate_connector_config("FileStreamSinkConnector", good)
assert checked["error_count"] == 0, checked
bad = {"connector.class": SINK, "topics": "kc-lines"}
checked = kc.validate_connector_config("FileStreamSinkConnector", bad)
assert checked["error_count"] == 1, checked
summary["validate_errors"] = [
    c["value"]["name"] for c in checked["configs"] if c["value"]["errors"]
]

created = kc.create_connector({"name": "kc-source", "config": {
    "connector.class": SOURCE, "file": source_file, "topic": "kc-lines",
    "value.converter": "org.apache.kafka.connect.storage.StringConverter"}})
assert created["name"] == "kc-source" and created["config"]["topic"] == "kc-lines", created
created = kc.create_connector({"name": "kc-sink", "config": dict(
    good, **{"value.converter": "org.apache.kafka.connect.storage.StringConverter"})})
assert created["name"] == "kc-sink", created
assert sorted(kc.list_connectors()) == ["kc-sink", "kc-source"], kc.list_connectors()
for name in ("kc-source", "kc-sink"):
    wait(f"{name} RUNNING", lambda: state(name) == ("RUNNING", ["RUNNING"]))
expanded = kc.list_connectors(expand="status")
assert expanded["kc-sink"]["status"]["tasks"][0]["worker_id"], expanded
wait("the first lines in the sink's file", lambda: len(lines(sink_file)) >= 3)

assert kc.get_connector("kc-sink")["type"] == "sink"
assert kc.get_connector_config("kc-source")["file"] == source_file
tasks = kc.list_connector_tasks("kc-source")
assert tasks[0]["id"] == {"connector": "kc-source", "task": 0}, tasks
assert kc.get_connector_task_status("kc-sink", 0)["state"] == "RUNNING"
# KIP-558's active topics, recorded in the status topic by whichever worker runs the task.
wait("kc-source's active topic on the follower",
     lambda: kc.list_connector_topics("kc-source")["kc-source"]["topics"] == ["kc-lines"])
wait("kc-sink's active topic on the follower",
     lambda: kc.list_connector_topics("kc-sink")["kc-sink"]["topics"] == ["kc-lines"])

# A new file for the sink: lines written after the change land there.
kc.update_connector("kc-sink", dict(good, file=sink_file2, **{
    "value.converter": "org.apache.kafka.connect.storage.StringConverter"}))
assert kc.get_connector_config("kc-sink")["file"] == sink_file2
wait("kc-sink RUNNING after its update", lambda: state("kc-sink") == ("RUNNING", ["RUNNING"]))

kc.pause_connector("kc-source")
wait("kc-source PAUSED", lambda: state("kc-source") == ("PAUSED", ["PAUSED"]))
with open(source_file, "a") as f:
    f.write("written while paused\n")
kc.resume_connector("kc-source")
wait("kc-source RUNNING again", lambda: state("kc-source") == ("RUNNING", ["RUNNING"]))
wait("the paused line in the new file", lambda: "written while paused" in lines(sink_file2))

kc.restart_connector("kc-source")
restarted = kc.restart_connector("kc-sink", include_tasks=True)
assert restarted["name"] == "kc-sink", restarted
kc.restart_connector_task("kc-sink", 0)
wait("kc-sink RUNNING after restarts", lambda: state("kc-sink") == ("RUNNING", ["RUNNING"]))
with open(source_file, "a") as f:
    f.write("written after the restarts\n")
wait("the line after the restarts", lambda: "written after the restarts" in lines(sink_file2))

kc.stop_connector("kc-source")
# A stopped connector has no tasks (KIP-875).
wait("kc-source STOPPED without tasks", lambda: state("kc-source") == ("STOPPED", []))
kc.reset_connector_topics("kc-source")
wait("kc-source's topics reset",
     lambda: kc.list_connector_topics("kc-source")["kc-source"]["topics"] == [])
kc.delete_connector("kc-source")
kc.delete_connector("kc-sink")
wait("no connectors left", lambda: kc.list_connectors() == [])
summary["done"] = True
print(json.dumps(summary))
