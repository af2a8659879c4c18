"""The key tuples of flordb 2.5-2.7's pivoted tables (spec section 7.7)."""

DATA_PREP = ("projid", "runid", "tstamp", "vid")
OUTR_LOOP = DATA_PREP + ("epoch",)
INNR_LOOP = OUTR_LOOP + ("step",)
