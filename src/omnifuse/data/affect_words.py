"""The sentences of the ``affect`` dataset: everyday remarks whose words are pleasant or
unpleasant, and little else.

A sentence is a frame ("Honestly, {subject} {remark}.") around a neutral subject ("the train
ride") and a remark that carries the valence ("was lovely" / "was a disaster"). The remarks
avoid words of a definite arousal ("thrilled", "furious", "peaceful", "gloomy"), so the words
say whether the speaker is pleased, not how stirred up they are: that is left to the delivery.
A few remarks are negated ("was not bad at all", "was not good at all"), which a bag of words
misreads and VADER's negation rule handles.
"""

from __future__ import annotations

SUBJECTS = (
    "the meeting",
    "the trip",
    "the dinner",
    "the new flat",
    "the weekend",
    "the film",
    "the concert",
    "the hotel",
    "the train ride",
    "the lesson",
    "the party",
    "the interview",
    "the visit to my aunt",
    "the garden",
    "the service",
    "the weather",
    "our holiday",
    "the book",
    "the game",
    "the new phone",
    "the museum",
    "the walk",
    "the repair",
    "the course",
    "the restaurant",
    "the delivery",
    "the presentation",
    "the match",
    "the wedding",
    "the school play",
)
PLEASANT = (
    "was wonderful",
    "was really good",
    "went well",
    "was lovely",
    "was a pleasure",
    "turned out great",
    "was nice",
    "was excellent",
    "was better than I hoped",
    "made me smile",
    "was a success",
    "was fun",
    "was beautiful",
    "was perfect",
    "was a real treat",
    "was not bad at all",
    "was a gift",
    "was very kind to us",
)
UNPLEASANT = (
    "was awful",
    "was terrible",
    "went badly",
    "was a disaster",
    "was horrible",
    "turned out badly",
    "was a failure",
    "was disappointing",
    "was dreadful",
    "was a mess",
    "was ugly",
    "was worse than I feared",
    "was a waste of time",
    "was not good at all",
    "was painful",
    "was a problem",
    "was very rude to us",
    "was nasty",
)
FRAMES = (
    "{Subject} {remark}.",
    "I think {subject} {remark}.",
    "Honestly, {subject} {remark}.",
    "Well, {subject} {remark} today.",
    "So {subject} {remark}, as you can imagine.",
    "In the end {subject} {remark}.",
    "Tell them that {subject} {remark}.",
)
WORDS = ("pleasant", "unpleasant")


def sentences(words: str) -> list[str]:
    """Every sentence of one valence (``pleasant`` or ``unpleasant``), in a fixed order."""
    remarks = PLEASANT if words == "pleasant" else UNPLEASANT
    out = []
    for frame in FRAMES:
        for subject in SUBJECTS:
            for remark in remarks:
                out.append(
                    frame.format(Subject=subject.capitalize(), subject=subject, remark=remark)
                )
    return out
