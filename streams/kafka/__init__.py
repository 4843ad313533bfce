"""The Kafka runtime: worker, consumer repairs, topics, feed state, DLQ, fence."""
