"""Checkout: orders with fuel and shop lines, promotions and frozen quotes, the payment saga, refunds."""
