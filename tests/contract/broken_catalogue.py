"""A catalogue with mistakes, for the tests of `invalidator catalogue check`."""

from contracts import Catalogue, Namespace, PurgeRule
from contracts.example_orders import OrderCreated

CATALOGUE = Catalogue(
    [
        Namespace(
            name="orders_by_company",
            template="company:{company_id}",
            owner="t",
            description="d",
            purged_by=(PurgeRule(OrderCreated, {"company_id": "payload.compnay_id"}),),
        ),
        Namespace(name="orphan", template="orphan:{x}", owner="t", description="d", purged_by=()),
    ]
)
