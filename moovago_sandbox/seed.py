"""Deterministic French seed data (Faker `fr_FR`): teams, companies, contacts, mandators, turnovers.

The same seed and sizes give the same rows, ids and timestamps, byte for byte. Timestamps lie
in 2024-2025, before anything a client writes during a run.
"""

from __future__ import annotations

import calendar
import random
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from faker import Faker
from graphql import GraphQLObjectType

from moovago_sandbox.model import EntityModel, SandboxModel
from moovago_sandbox.scalars import UTC, format_datetime
from moovago_sandbox.store import TEAM, IdFactory, cursor_of
from moovago_sandbox.values import FieldChecks, ValueMaker, conform

BASE_TIME = datetime(2024, 1, 2, 7, 0, tzinfo=UTC)
MANDATORS_PER_TEAM = 10
CHUNK = 2000  # companies generated and inserted at a time
COMPANIES_OTHER_TEAMS = 5
MEMBERS_PER_TEAM = 4


@dataclass(frozen=True)
class TeamPlan:
    """One team to seed: its id (None = derive from the seed) and how many companies it gets."""

    team_id: str | None
    companies: int


def id_salt(seed: int) -> int:
    return (seed * 40503 + 0x5EED) & 0xFFFF


POOL_SIZE = 1500


def slug(text: str) -> str:
    """`Guérin Cordier SARL` -> `guerincordiersarl` (for e-mail and web addresses)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_text.lower() if c.isalnum())


class _Pools:
    """Values drawn once from Faker, then combined by the seeded RNG.

    Faker costs tens of microseconds per value; drawing from pools keeps 100,000 companies
    in seconds while every value still comes from Faker's French providers.
    """

    def __init__(self, fake: Faker) -> None:
        self.companies = [fake.company() for _ in range(POOL_SIZE)]
        self.streets = [fake.street_name() for _ in range(POOL_SIZE)]
        self.cities = [fake.city() for _ in range(POOL_SIZE)]
        self.postcodes = [fake.postcode() for _ in range(POOL_SIZE)]
        self.last_names = [fake.last_name() for _ in range(POOL_SIZE)]
        self.male_names = [fake.first_name_male() for _ in range(300)]
        self.female_names = [fake.first_name_female() for _ in range(300)]
        self.jobs = [fake.job() for _ in range(300)]
        self.notes = [fake.sentence(nb_words=10) for _ in range(300)]
        self.mail_domains = sorted({fake.free_email_domain() for _ in range(50)})


HAND_WRITTEN = ("company", "companyContact", "mandator", "turnover")


class _Generator:
    def __init__(self, seed: int, model: SandboxModel) -> None:
        self.seed = seed
        self.model = model
        self.models: Mapping[str, EntityModel] = model.entities
        self.maker = ValueMaker(model.schema, seed)
        self.checks: dict[str, FieldChecks] = {}
        for name, m in self.models.items():
            obj = m.object_type
            assert obj is not None
            self.checks[name] = FieldChecks(
                model.schema,
                {
                    f: obj.fields[f].type
                    for f in m.stored_fields
                    if f in obj.fields and f != m.cursor_field
                },
            )
        team_type = model.schema.type_map.get(model.team_type or "")
        self.team_checks = FieldChecks(
            model.schema,
            {f: d.type for f, d in team_type.fields.items() if f not in ("id", "_id")}
            if isinstance(team_type, GraphQLObjectType)
            else {},
        )
        self.team_ids: dict[str, list[str]] = {}
        self.ids = IdFactory(id_salt(seed))
        self.clock = BASE_TIME
        self.rng = random.Random(seed)  # noqa: S311 (reproducible fake data)
        self.fake = Faker("fr_FR")
        self.fake.seed_instance(seed)
        self.customer_numbers = 0
        self.pools = _Pools(self.fake)

    def _phone(self, mobile: bool = False) -> str:
        """A French number as people write it: `05 49 12 34 56`, `06 12 34 56 78`."""
        first = self.rng.choice("67") if mobile else self.rng.choice("12345")
        return f"0{first} " + " ".join(f"{self.rng.randrange(100):02d}" for _ in range(4))

    def _tick(self) -> tuple[str, datetime]:
        self.clock += timedelta(seconds=self.rng.randint(1, 90))
        return self.ids.next(self.clock), self.clock

    def _stamps(self, created: datetime) -> dict[str, str]:
        updated = created
        if self.rng.random() < 0.4:
            updated = created + timedelta(seconds=self.rng.randint(60, 30 * 86400))
        return {"createdAt": format_datetime(created), "updatedAt": format_datetime(updated)}

    def _add(
        self,
        out: dict[str, list[dict[str, Any]]],
        entity: str,
        values: dict[str, Any],
        created: datetime,
    ) -> None:
        """Append the row, cut to the file's fields and checked against their types."""
        model = self.models.get(entity)
        if model is None:
            return
        values = {**values, **self._stamps(created)}
        row = {f: values.get(f) for f in model.stored_fields}
        conform(row, self.checks[entity], self.maker)
        row["teamId"] = values["teamId"]
        for mirror, source in model.mirrors.items():
            row[mirror] = row.get(source)
        if model.cursor_field:
            row[model.cursor_field] = cursor_of(str(row["id"]))
        self.team_ids.setdefault(entity, []).append(str(row["id"]))
        out[entity].append(row)

    def _generic(
        self, out: dict[str, list[dict[str, Any]]], entity: str, team_id: str, count: int
    ) -> Iterator[dict[str, list[dict[str, Any]]]]:
        """Rows of an entity the hand-written generator does not know: every value from its
        type (Faker words by field name), references to rows of the same team."""
        model = self.models[entity]
        for n in range(count):
            row_id, created = self._tick()
            values: dict[str, Any] = {"id": row_id, "teamId": team_id}
            for fname, target in model.references.items():
                pool = self.team_ids.get(target) or []
                if fname in model.list_fields:
                    values[fname] = sorted(self.rng.sample(pool, k=min(len(pool), 2)))
                elif pool:
                    values[fname] = self.rng.choice(pool)
                elif fname in model.non_null:
                    return  # nothing it could point to in this team
            self._add(out, entity, values, created)
            if (n + 1) % CHUNK == 0:
                yield out
                out.update({name: [] for name in out})

    def team(self, plan: TeamPlan, index: int) -> Iterator[dict[str, list[dict[str, Any]]]]:
        """The team's rows in chunks of CHUNK companies (with their contacts and turnovers)."""
        fake, rng = self.fake, self.rng
        team_id, created = self._tick()
        team_id = plan.team_id or team_id
        members = []
        for _ in range(MEMBERS_PER_TEAM):
            member_id, _ = self._tick()
            first, last = fake.first_name(), fake.last_name()
            members.append(
                {
                    "id": member_id,
                    "alias": f"{first[0]}{last}".replace(" ", ""),
                    "firstName": first,
                    "lastName": last,
                    "email": f"{first}.{last}@{fake.free_email_domain()}".lower().replace(" ", ""),
                }
            )
        self.team_ids = {}
        out: dict[str, list[dict[str, Any]]] = {TEAM: [], **{name: [] for name in self.models}}
        team_row = {
            "id": team_id,
            "name": f"Équipe {fake.region()}" if index else f"Équipe {fake.city()}",
            "members": members,
            **self._stamps(created),
        }
        out[TEAM].append(conform(team_row, self.team_checks, self.maker))
        member_ids = [m["id"] for m in members]
        mandator_ids: list[str] = []
        for n in range(MANDATORS_PER_TEAM):
            row_id, created = self._tick()
            mandator_ids.append(row_id)
            self._add(
                out,
                "mandator",
                {
                    "id": row_id,
                    "teamId": team_id,
                    "name": fake.company(),
                    "code": f"MAN-{n + 1:03d}",
                    "email": fake.company_email(),
                    "phone": self._phone(),
                    "website": fake.url(),
                    "note": fake.sentence(nb_words=8) if rng.random() < 0.3 else None,
                },
                created,
            )
        for n in range(plan.companies):
            self._company(out, team_id, member_ids, mandator_ids)
            if (n + 1) % CHUNK == 0:
                yield out
                out = {TEAM: [], **{name: [] for name in self.models}}
        for entity in self._generic_order():
            yield from self._generic(out, entity, team_id, plan.companies)
        yield out

    def _generic_order(self) -> list[str]:
        """Entities without a hand-written generator, each after the ones it references."""
        todo = [n for n in self.models if n not in HAND_WRITTEN]
        done: list[str] = []
        while todo:
            ready = [
                n
                for n in todo
                if all(t in done or t not in todo for t in self.models[n].references.values())
            ] or todo[:1]
            done += [n for n in ready if n not in done]
            todo = [n for n in todo if n not in done]
        return done

    def _company(
        self,
        out: dict[str, list[dict[str, Any]]],
        team_id: str,
        member_ids: Sequence[str],
        mandator_ids: Sequence[str],
    ) -> None:
        rng, pools = self.rng, self.pools
        company_id, created = self._tick()
        status = rng.choices(["CLIENT", "PROSPECT", "SUSPECT"], weights=[5, 3, 2])[0]
        code = None
        if status == "CLIENT":
            self.customer_numbers += 1
            code = f"CLI-{self.customer_numbers:06d}"
        own_mandators = sorted(
            rng.sample(list(mandator_ids), k=rng.randint(0, min(3, len(mandator_ids))))
        )
        name = rng.choice(pools.companies)
        domain = slug(name.split(" ")[0]) + rng.choice((".fr", ".fr", ".com"))
        self._add(
            out,
            "company",
            {
                "id": company_id,
                "teamId": team_id,
                "name": name,
                "ownerIds": sorted(rng.sample(list(member_ids), k=1 if rng.random() < 0.85 else 2)),
                "status": status,
                "customerCode": code,
                "address": f"{rng.randint(1, 150)} {rng.choice(pools.streets)}",
                "postalCode": rng.choice(pools.postcodes),
                "city": rng.choice(pools.cities),
                "country": "FR",
                "coordinates": {
                    "latitude": round(rng.uniform(43.3, 50.9), 6),
                    "longitude": round(rng.uniform(-4.3, 7.6), 6),
                },
                "phone": self._phone(),
                "email": f"contact@{domain}",
                "website": f"https://www.{domain}" if rng.random() < 0.6 else None,
                "note": rng.choice(pools.notes) if rng.random() < 0.3 else None,
                "mandatorIds": own_mandators,
            },
            created,
        )
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
            row_id, created = self._tick()
            civility = rng.choice(("MR", "MRS"))
            first = rng.choice(pools.male_names if civility == "MR" else pools.female_names)
            last = rng.choice(pools.last_names)
            self._add(
                out,
                "companyContact",
                {
                    "id": row_id,
                    "teamId": team_id,
                    "companyId": company_id,
                    "civility": civility,
                    "firstName": first,
                    "lastName": last,
                    "email": f"{slug(first)}.{slug(last)}@{domain}",
                    "phone": self._phone(),
                    "mobilePhone": self._phone(mobile=True) if rng.random() < 0.5 else None,
                    "position": rng.choice(pools.jobs),
                    "note": None,
                },
                created,
            )
        if status == "CLIENT":
            month = date(2025, rng.randint(1, 9), 1)
            for _ in range(rng.randint(1, 3)):
                row_id, created = self._tick()
                last_day = calendar.monthrange(month.year, month.month)[1]
                self._add(
                    out,
                    "turnover",
                    {
                        "id": row_id,
                        "teamId": team_id,
                        "companyId": company_id,
                        "mandatorId": rng.choice(own_mandators) if own_mandators else None,
                        "amount": round(rng.uniform(150, 45000), 2),
                        "currency": "EUR",
                        "startDate": month.isoformat(),
                        "endDate": month.replace(day=last_day).isoformat(),
                        "note": None,
                    },
                    created,
                )
                month = month.replace(day=last_day) + timedelta(days=1)


def generate_chunks(
    seed: int, teams: Sequence[TeamPlan], model: SandboxModel
) -> Iterator[tuple[dict[str, list[dict[str, Any]]], int]]:
    """Rows by entity, a chunk at a time (so 100,000 companies never sit in memory at once),
    each with the id counter to continue from."""
    gen = _Generator(seed, model)
    for index, plan in enumerate(teams):
        for chunk in gen.team(plan, index):
            yield chunk, gen.ids.counter


def generate(
    seed: int, teams: Sequence[TeamPlan], model: SandboxModel
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Rows of every team by entity, and the id counter to continue from."""
    dataset: dict[str, list[dict[str, Any]]] = {TEAM: [], **{name: [] for name in model.entities}}
    counter = 0
    for chunk, chunk_counter in generate_chunks(seed, teams, model):
        for name, rows in chunk.items():
            dataset[name].extend(rows)
        counter = chunk_counter
    return dataset, counter
