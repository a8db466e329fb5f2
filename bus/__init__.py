"""The transport: one small interface, an embedded in-process bus and Kafka."""

from bus.base import Bus, GroupConsumer, Record, Tail
from bus.topics import TopicNames, TopicSpec

__all__ = ["Bus", "GroupConsumer", "Record", "Tail", "TopicNames", "TopicSpec"]
