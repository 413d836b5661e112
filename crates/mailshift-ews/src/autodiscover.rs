//! Autodiscover (POX, the Outlook provider schema): the EWS URL of a mailbox when the plan
//! gives none. Tried in the documented order, `https://autodiscover.DOMAIN/autodiscover/
//! autodiscover.xml` then `https://DOMAIN/autodiscover/autodiscover.xml`, with the account's
//! own credentials; the first answer naming an `EwsUrl` wins.
