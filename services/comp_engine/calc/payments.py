"""Pay on cash: how much of a deal's value its invoices have paid by a given instant. Pure.

With `payment.timing: on_cash` a line is earned at booking but payable only in proportion
to the `invoice.paid` amounts received for its deal (10,000 sold, 5,000 paid: half the
commission is payable, frappe/erpnext#25239). Payments in another currency convert at the
day they were paid; the share never goes above 1.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.comp_engine.calc.bookings import Booking
from services.comp_engine.calc.inputs import Inputs

ZERO = Decimal(0)
ONE = Decimal(1)


def paid_share(booking: Booking, inputs: Inputs, until: datetime) -> Decimal:
    state = booking.state
    if not state.amount or state.currency is None:
        return ZERO
    paid = ZERO
    for payment in inputs.payments_of(booking.deal_id):
        if payment.paid_at <= until:
            paid += payment.amount * inputs.fx.rate(
                payment.currency, state.currency, payment.paid_at.date()
            )
    return min(max(paid / state.amount, ZERO), ONE)
