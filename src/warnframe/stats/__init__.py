"""Statistics every table shares: the typed values they return (``types``: Rate, Diff, Mean, Fisher),
rates with Wilson intervals and exact tests (``rates``) and the seed x prompt cluster bootstrap with
equivalence tests (``clustered``)."""
