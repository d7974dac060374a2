"""High availability: the command journal on a NATS JetStream stream, hot standbys, a lease.

    primary                         JetStream (R1 or R3)                    standby
    Journal -> StreamWriter  ---->  stream NAME (subject NAME.journal)  ---> Follower -> core
      publish one message per        fenced: Nats-Expected-Last-Sequence      same core, same
      group-commit batch, ack        de-duplicated: Nats-Msg-Id                 local SQLite copy
      clients after the PubAck       KV NAME-lease: the primary's lease       takes the lease when
      then copy to local SQLite      KV NAME-nodes: each node's position       it expires
                                     objects NAME-snapshots: snapshots

The stream is the journal of record; each node's SQLite folder is its local copy, written only
after the stream has the batch (so it is always a prefix of the stream, and every tool that
reads a folder, `tonne log verify` included, works on any node's folder). No consensus of our
own: JetStream replicates the stream (Raft) and fences publishes by the expected last
sequence; the lease only says who should publish, the fence makes sure only one can.

- stream.py: the messages on the stream, connecting, creating the stream and buckets.
- writer.py: the primary's journal writer (the `writer=` seam of `Journal`).
- follower.py: applying stream messages to the core and the local copy (standby, catch-up).
- lease.py: the leadership lease in a KV bucket.
- node.py: a node's roles: recover locally, follow, take the lease, catch up, promote.
- run.py: running a node until it stops (`tonne serve --journal`).
- verify.py: the audit replay of a whole stream (`tonne status --verify`).
"""
