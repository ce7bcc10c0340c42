"""The holder's page (« Mon espace carte »): what a card holder sees and does on the web.

Sign-in with a local account activated by a one-time code handed out at the desk (argon2, throttled)
or through OpenID Connect (FranceConnect claims); cards, balances, pending loads, Cursus aid,
employment rights and who consulted them, the school canteen menu; block a lost card, buy a pass or
reload the wallet online (the sale becomes an action list), download one's data, keep one's own trip
history or not. Documentation: ``docs/holder.md``.
"""
