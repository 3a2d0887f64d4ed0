"""A small news-style corpus that the project writes itself, for the demo and its tokenizer.

Real CNN/DailyMail text cannot ship with the project, so the demo uses articles generated here
from templates with a fixed seed: the same bytes on every machine. Each record has `article` and
`highlights` (three sentences joined by "\\n", as the Hugging Face dataset gives them), so the
file is a valid `--dataset` for `client-sut run` and `client-sut evaluate`.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

CITIES = ["Lisbon", "Denver", "Osaka", "Nairobi", "Glasgow", "Perth", "Quebec", "Tucson",
          "Valencia", "Bergen", "Austin", "Leeds", "Cork", "Malmo", "Adelaide", "Porto"]
AGENCIES = ["the city council", "the regional water board", "the transport authority",
            "the state health department", "the national weather service", "the port authority",
            "the university hospital", "the school district", "the fire service"]
EVENTS = [
    ("flood", "heavy rain pushed the river over its banks", "residents were moved to shelters"),
    ("strike", "bus drivers walked out over pay", "commuters faced long delays"),
    ("heatwave", "temperatures passed forty degrees for a third day", "cooling centres opened"),
    ("power cut", "a substation fault left homes without electricity",
     "engineers worked through the night"),
    ("bridge closure", "inspectors found cracks in a main support",
     "traffic was diverted across the city"),
    ("wildfire", "dry winds spread a fire through the hills", "firefighters held the line"),
    ("data breach", "hackers reached records of patients", "the hospital warned those affected"),
    ("festival", "a music festival drew record crowds", "extra trains were laid on"),
]
PEOPLE = ["Maria Santos", "James Okafor", "Ingrid Larsen", "Kenji Watanabe", "Aisha Bello",
          "Tom Gallagher", "Lucia Romero", "Peter Novak", "Hannah Price", "Omar Haddad"]
ROLES = ["a spokesperson for", "the head of", "a senior engineer at", "the chair of"]


def _article(rng: random.Random) -> dict[str, str]:
    city = rng.choice(CITIES)
    agency = rng.choice(AGENCIES)
    kind, cause, effect = rng.choice(EVENTS)
    person, role = rng.choice(PEOPLE), rng.choice(ROLES)
    count = rng.randint(12, 4800)
    cost = rng.randint(2, 95)
    days = rng.randint(2, 14)
    weekday = rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"])
    body = [
        f"{city} ({rng.choice(['CNN', 'AP', 'Reuters'])}) -- A {kind} hit {city} on {weekday} "
        f"after {cause}, and {effect}.",
        f"Officials said {count} people were affected and that repairs could cost "
        f"{cost} million dollars.",
        f"\"We have never seen anything like this in {city},\" said {person}, {role} {agency}. "
        f"\"Our teams are doing everything they can, and we ask people to stay patient.\"",
        f"The {kind} is the latest in a series of problems for {agency}, which has faced "
        f"questions over its budget and planning for years.",
        f"Local businesses reported losses, and several schools stayed closed while "
        f"{agency} assessed the damage.",
        f"{person} said a full review would be published within {days} days, and that "
        f"lessons would be learned.",
        "Residents who need help can call the emergency line, which will stay open "
        "through the weekend.",
    ]
    rng.shuffle(body[3:6])
    highlights = [
        f"A {kind} hit {city} after {cause}.",
        f"{count} people were affected and repairs could cost {cost} million dollars.",
        f"{person} of {agency} promised a review within {days} days.",
    ]
    return {"article": " ".join(body), "highlights": "\n".join(highlights)}


def build_corpus(count: int = 64, seed: int = 42) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [_article(rng) for _ in range(count)]


def write_corpus(path: Path, count: int = 64, seed: int = 42) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in build_corpus(count, seed):
            out.write(json.dumps(record) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the demo news corpus as JSONL.")
    parser.add_argument("output", type=Path)
    parser.add_argument("--count", type=int, default=64)
    args = parser.parse_args()
    print(write_corpus(args.output, args.count))


if __name__ == "__main__":
    main()
