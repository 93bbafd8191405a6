#!/usr/bin/env python3
"""Writes benches/terms-5000.tsv: 5,000 hazard-like terms for throughput benchmarks.

The 36 illustrative terms of configs/lists/hazard-terms.tsv plus deterministic pseudo-terms
(chemical-, pathogen- and malware-like 1-3 word phrases). They are not real hazard terms; they
give the matcher a realistic list size and shape. Re-run: python3 benches/make_terms.py
"""
import os, random

HERE = os.path.dirname(os.path.abspath(__file__))
random.seed(5000)
prefixes = ["tetra", "methyl", "ethyl", "fluoro", "chloro", "bromo", "phospho", "nitro", "cyano",
            "thio", "amino", "hydroxy", "dimethyl", "trichloro", "isopropyl", "benzyl", "acetyl"]
cores = ["phosphonate", "amine", "idine", "oxime", "carbamate", "formate", "azide", "nitrile",
         "sulfide", "arsine", "phosgene", "cyanide", "hydrazine", "peroxide", "chloride"]
pathogens = ["strain", "toxin", "spore", "virus", "bacillus", "prion", "plasmid", "vector", "culture"]
cyber = ["exploit", "payload", "loader", "dropper", "rootkit", "stager", "implant", "beacon", "wiper"]
mods = ["weaponized", "aerosol", "enhanced", "stabilized", "lyophilized", "encrypted", "polymorphic",
        "stealth", "binary", "precursor", "synthetic", "modified"]
categories = ["chem", "bio", "rad", "nuc", "cyber"]

terms = {}
with open(os.path.join(HERE, "..", "configs", "lists", "hazard-terms.tsv")) as f:
    for line in f:
        if line.strip() and not line.startswith("#"):
            t, c, w = line.rstrip("\n").split("\t")
            terms[t.lower()] = (t, c, w)
while len(terms) < 5000:
    kind = random.randrange(3)
    if kind == 0:
        word = random.choice(prefixes) + random.choice(prefixes) + random.choice(cores)
        term, cat = word, "chem"
    elif kind == 1:
        term = f"{random.choice(mods)} {random.choice(prefixes)}{random.choice(pathogens)}"
        cat = random.choice(["bio", "rad", "nuc"])
    else:
        term = f"{random.choice(mods)} {random.choice(cyber)} {random.randrange(1000)}"
        cat = "cyber"
    terms.setdefault(term, (term, cat, str(round(random.uniform(0.5, 2.0), 1))))
with open(os.path.join(HERE, "terms-5000.tsv"), "w") as f:
    f.write("# 5,000 hazard-like benchmark terms (see make_terms.py): term<TAB>category<TAB>weight\n")
    for t, c, w in terms.values():
        f.write(f"{t}\t{c}\t{w}\n")
