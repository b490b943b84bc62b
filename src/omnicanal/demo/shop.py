"""The shop itself: its stores, where its customers live, and its catalogue."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnicanal.demo.days import BoolArray, FloatArray

BRAND = "Maison Lumière"
SITE = "https://www.maison-lumiere.fr"


@dataclass(frozen=True, slots=True)
class Store:
    """One of the retailer's stores."""

    code: str
    name: str
    city: str
    postcode: str
    street: str


STORES = (
    Store("paris-01", "Maison Lumière Marais", "Paris", "75003", "12 rue des Francs-Bourgeois"),
    Store("lyon-01", "Maison Lumière Presqu'île", "Lyon", "69002", "41 rue de la République"),
    Store(
        "bordeaux-01",
        "Maison Lumière Sainte-Catherine",
        "Bordeaux",
        "33000",
        "88 rue Sainte-Catherine",
    ),
)

# Where customers live: the three store catchments, then the rest of France (online only).
COMMUNES: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        *((f"750{n:02d}", "Paris") for n in range(1, 21)),
        ("92100", "Boulogne-Billancourt"),
        ("93100", "Montreuil"),
        ("94300", "Vincennes"),
        ("92200", "Neuilly-sur-Seine"),
        ("92130", "Issy-les-Moulineaux"),
        ("93200", "Saint-Denis"),
        ("94200", "Ivry-sur-Seine"),
        ("92300", "Levallois-Perret"),
    ),
    (
        *((f"6900{n}", "Lyon") for n in range(1, 10)),
        ("69100", "Villeurbanne"),
        ("69300", "Caluire-et-Cuire"),
        ("69500", "Bron"),
        ("69130", "Écully"),
        ("69600", "Oullins"),
    ),
    (
        ("33000", "Bordeaux"),
        ("33200", "Bordeaux"),
        ("33300", "Bordeaux"),
        ("33800", "Bordeaux"),
        ("33700", "Mérignac"),
        ("33600", "Pessac"),
        ("33400", "Talence"),
        ("33150", "Cenon"),
        ("33110", "Le Bouscat"),
    ),
    (
        ("13001", "Marseille"),
        ("13008", "Marseille"),
        ("31000", "Toulouse"),
        ("06000", "Nice"),
        ("44000", "Nantes"),
        ("67000", "Strasbourg"),
        ("34000", "Montpellier"),
        ("35000", "Rennes"),
        ("59000", "Lille"),
        ("51100", "Reims"),
        ("76600", "Le Havre"),
        ("42000", "Saint-Étienne"),
        ("83000", "Toulon"),
        ("38000", "Grenoble"),
        ("21000", "Dijon"),
        ("49000", "Angers"),
        ("37000", "Tours"),
        ("87000", "Limoges"),
        ("63000", "Clermont-Ferrand"),
        ("29200", "Brest"),
        ("64000", "Pau"),
        ("74000", "Annecy"),
        ("17000", "La Rochelle"),
        ("01000", "Bourg-en-Bresse"),
    ),
)
ELSEWHERE = len(STORES)  # region index of customers far from every store

# (code, category, product names, lowest price, highest price, brand)
_CATEGORIES = (
    (
        "TSH",
        "T-shirts",
        ("T-shirt coton bio", "T-shirt col V", "Marinière", "Débardeur côtelé"),
        19,
        39,
        BRAND,
    ),
    (
        "CHE",
        "Chemises",
        ("Chemise en lin", "Chemise oxford", "Blouse fluide", "Chemise à carreaux"),
        45,
        89,
        BRAND,
    ),
    (
        "PUL",
        "Pulls",
        ("Pull laine mérinos", "Cardigan en maille", "Pull col roulé", "Sweat molleton"),
        49,
        129,
        BRAND,
    ),
    (
        "JEA",
        "Jeans",
        ("Jean droit brut", "Jean slim", "Jean large", "Jean mom"),
        59,
        109,
        "Lumière Denim",
    ),
    (
        "PAN",
        "Pantalons",
        ("Pantalon chino", "Pantalon à pinces", "Pantalon en velours"),
        49,
        99,
        BRAND,
    ),
    (
        "ROB",
        "Robes",
        ("Robe fluide imprimée", "Robe pull", "Robe chemise", "Robe portefeuille"),
        59,
        139,
        BRAND,
    ),
    ("JUP", "Jupes", ("Jupe plissée", "Jupe en jean", "Jupe midi satinée"), 39, 89, BRAND),
    (
        "VES",
        "Vestes",
        ("Veste en lin", "Veste en jean", "Blazer ajusté", "Veste matelassée"),
        89,
        189,
        BRAND,
    ),
    (
        "MAN",
        "Manteaux",
        ("Manteau en laine", "Trench classique", "Doudoune légère", "Caban"),
        129,
        299,
        BRAND,
    ),
    (
        "CHA",
        "Chaussures",
        ("Baskets cuir blanc", "Bottines chelsea", "Mocassins", "Sandales tressées"),
        69,
        159,
        "Atelier Sablé",
    ),
    ("SAC", "Sacs", ("Sac cabas cuir", "Sac bandoulière", "Pochette"), 39, 149, "Atelier Sablé"),
    (
        "ACC",
        "Accessoires",
        ("Écharpe en laine", "Ceinture cuir", "Bonnet côtelé", "Foulard en soie"),
        15,
        59,
        BRAND,
    ),
)
_COLOURS = ("noir", "blanc", "bleu marine", "écru", "kaki", "rouge brique", "camel", "gris chiné")


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The products, as arrays indexed by product number."""

    sku: tuple[str, ...]
    name: tuple[str, ...]
    category: tuple[str, ...]
    brand: tuple[str, ...]
    slug: tuple[str, ...]
    price: FloatArray
    popularity: FloatArray  # probability of being picked for a basket
    active: BoolArray

    def __len__(self) -> int:
        return len(self.sku)


def slug(text: str) -> str:
    table = str.maketrans("àâäéèêëîïôöùûüç'", "aaaeeeeiioouuuc-")
    return "-".join(text.lower().translate(table).split())


def catalogue(rng: np.random.Generator) -> Catalogue:
    rows: list[tuple[str, str, str, str, float]] = []
    for code, category, names, low, high, brand in _CATEGORIES:
        for n, name in enumerate(names):
            price = float(rng.integers(low, high + 1)) - (0.05 if rng.random() < 0.6 else 0.0)
            colours = rng.choice(len(_COLOURS), size=int(rng.integers(3, 6)), replace=False)
            for c in sorted(colours.tolist()):
                rows.append(
                    (f"{code}-{n + 1:02d}{c:01d}", f"{name} {_COLOURS[c]}", category, brand, price)
                )
    popularity = rng.lognormal(0.0, 0.9, size=len(rows))
    active = rng.random(len(rows)) > 0.08
    popularity[~active] *= 0.3  # discontinued items still sell, less, until the stock is gone
    return Catalogue(
        sku=tuple(r[0] for r in rows),
        name=tuple(r[1] for r in rows),
        category=tuple(r[2] for r in rows),
        brand=tuple(r[3] for r in rows),
        slug=tuple(slug(r[1]) for r in rows),
        price=np.array([r[4] for r in rows]),
        popularity=popularity / popularity.sum(),
        active=active,
    )
