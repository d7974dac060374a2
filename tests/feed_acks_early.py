"""The command feed with the bug the crash test must catch: it answers before the commit.

    python -m tests.feed_acks_early --data DIR [the options of python -m gateway.feed]

is the feed (gateway/feed.py) with `Feed.answer` replaced: each read's answers go out before
`journal.flush()`, so a kill between the two loses commands the clients were told were
durable. tests/test_durability_crash.py runs it to show that the crash test catches such a
server; the production feed has no switch for it.
"""

from __future__ import annotations

import asyncio
import sys

from gateway.feed import Feed, frames, main


class AcksBeforeCommit(Feed):
    async def answer(
        self, writer: asyncio.StreamWriter, answers: list[bytes], hashes: list[bytes]
    ) -> None:
        writer.write(frames(answers))  # WRONG on purpose: before the commit
        await self.journal.flush()
        writer.write(frames([self.answer_hash(b) for b in hashes]))
        await writer.drain()


if __name__ == "__main__":
    sys.exit(main(feed_class=AcksBeforeCommit))
