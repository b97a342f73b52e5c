"""The visitor's pages in English, French and German.

The language is the visitor's choice from the switcher (``?lang=``, remembered in the
``wr_lang`` cookie), else the best match of ``Accept-Language``, else English.
"""

from __future__ import annotations

LANGUAGES = {"en": "English", "fr": "Français", "de": "Deutsch"}
"""Language code -> its own name, as the switcher shows it."""
DEFAULT = "en"
LANGUAGE_COOKIE = "wr_lang"

TEXTS: dict[str, dict[str, str]] = {
    "in_line": {"en": "You're in line", "fr": "Vous êtes dans la file",
                "de": "Sie sind in der Warteschlange"},
    "your_place": {"en": "Your place in line", "fr": "Votre place dans la file",
                   "de": "Ihr Platz in der Schlange"},
    "expected_wait": {"en": "Expected wait:", "fr": "Attente estimée :",
                      "de": "Erwartete Wartezeit:"},
    "error_not_text": {"en": "must be text", "fr": "doit être du texte", "de": "muss Text sein"},
    "error_required": {"en": "this field is required", "fr": "ce champ est obligatoire",
                       "de": "dieses Feld ist erforderlich"},
    "error_tick": {"en": "please tick this box", "fr": "veuillez cocher cette case",
                   "de": "bitte kreuzen Sie dieses Feld an"},
    "error_too_long": {"en": "at most {n} characters", "fr": "{n} caractères au plus",
                       "de": "höchstens {n} Zeichen"},
    "error_email": {"en": "please enter an email address like name@example.com",
                    "fr": "veuillez saisir une adresse e-mail comme nom@exemple.fr",
                    "de": "bitte geben Sie eine E-Mail-Adresse wie name@beispiel.de ein"},
    "error_phone": {"en": "please enter a phone number (digits, spaces, +)",
                    "fr": "veuillez saisir un numéro de téléphone (chiffres, espaces, +)",
                    "de": "bitte geben Sie eine Telefonnummer ein (Ziffern, Leerzeichen, +)"},
    "error_choice": {"en": "please pick one of the options",
                     "fr": "veuillez choisir une des options",
                     "de": "bitte wählen Sie eine der Optionen"},
    "error_need_contact": {"en": "an email address or a phone number, please",
                           "fr": "une adresse e-mail ou un numéro de téléphone, s'il vous plaît",
                           "de": "bitte eine E-Mail-Adresse oder eine Telefonnummer"},
    "error_phone_e164": {"en": "a phone number with its country code, like +44 7700 900123",
                         "fr": "un numéro avec l'indicatif du pays, comme +33 6 12 34 56 78",
                         "de": "eine Telefonnummer mit Ländervorwahl, wie +49 151 2345678"},
    "consent_text": {"en": "I agree to be contacted about my order",
                     "fr": "J'accepte d'être contacté(e) au sujet de ma commande",
                     "de": "Ich bin einverstanden, wegen meiner Bestellung kontaktiert zu werden"},
    "choose": {"en": "Choose\u2026", "fr": "Choisir\u2026", "de": "Auswählen\u2026"},
    "field_name": {"en": "Name", "fr": "Nom", "de": "Name"},
    "field_email": {"en": "Email", "fr": "E-mail", "de": "E-Mail"},
    "field_phone": {"en": "Phone", "fr": "Téléphone", "de": "Telefon"},
    "field_address": {"en": "Address", "fr": "Adresse", "de": "Adresse"},
    "field_city": {"en": "City", "fr": "Ville", "de": "Ort"},
    "field_postal_code": {"en": "Postal code", "fr": "Code postal", "de": "Postleitzahl"},
    "field_country": {"en": "Country", "fr": "Pays", "de": "Land"},
    "field_product": {"en": "Product", "fr": "Produit", "de": "Produkt"},
    "field_quantity": {"en": "Quantity", "fr": "Quantité", "de": "Menge"},
    "field_plan": {"en": "Plan", "fr": "Forfait", "de": "Tarif"},
    "field_store": {"en": "Store", "fr": "Magasin", "de": "Filiale"},
    "reload": {"en": "Check again", "fr": "Vérifier à nouveau", "de": "Erneut prüfen"},
    "progress": {"en": "Progress through the line", "fr": "Progression dans la file",
                 "de": "Fortschritt in der Warteschlange"},
    "updated": {"en": "Updated {n} s ago", "fr": "Mis à jour il y a {n} s",
                "de": "Vor {n} s aktualisiert"},
    "your_turn": {"en": "It's your turn!", "fr": "C'est votre tour !",
                  "de": "Sie sind an der Reihe!"},
    "your_turn_session": {
        "en": "Taking you there now. You have up to {max} minutes to finish; the session "
              "ends after {idle} minutes without activity.",
        "fr": "Nous vous y emmenons. Vous avez jusqu'à {max} minutes pour terminer ; la "
              "session prend fin après {idle} minutes d'inactivité.",
        "de": "Es geht jetzt weiter. Sie haben bis zu {max} Minuten Zeit; die Sitzung "
              "endet nach {idle} Minuten ohne Aktivität."},
    "eta_unknown": {"en": "working it out\u2026", "fr": "en cours de calcul\u2026",
                    "de": "wird berechnet\u2026"},
    "eta_soon": {"en": "less than a minute", "fr": "moins d'une minute",
                 "de": "weniger als eine Minute"},
    "eta_minute": {"en": "about 1 minute", "fr": "environ 1 minute", "de": "etwa 1 Minute"},
    "eta_minutes": {"en": "{low} to {high} minutes", "fr": "{low} à {high} minutes",
                    "de": "{low} bis {high} Minuten"},
    "paused": {"en": "Entry is paused for a moment. You keep your place.",
               "fr": "L'entrée est suspendue un instant. Vous gardez votre place.",
               "de": "Der Einlass ist kurz pausiert. Sie behalten Ihren Platz."},
    "prequeue": {"en": "The sale starts soon. Everyone here before the start gets a place "
                       "in random order at the start, so there is no need to rush: keep "
                       "this page open.",
                 "fr": "La vente commence bientôt. Toute personne présente avant le début "
                       "reçoit une place tirée au sort au lancement : inutile de vous "
                       "précipiter, gardez cette page ouverte.",
                 "de": "Der Verkauf beginnt bald. Wer vor dem Start da ist, bekommt beim "
                       "Start einen Platz in zufälliger Reihenfolge \u2013 kein Grund zur Eile: "
                       "lassen Sie diese Seite offen."},
    "how_it_works": {
        "en": "We let people in first come, first served, as places free up. This page "
              "updates by itself; when it's your turn it takes you straight on. You can "
              "switch tabs, but if this page is closed for more than {grace} seconds your "
              "place is given up.",
        "fr": "Nous faisons entrer les personnes dans l'ordre d'arrivée, à mesure que des "
              "places se libèrent. Cette page se met à jour toute seule ; quand c'est votre "
              "tour, elle vous emmène directement. Vous pouvez changer d'onglet, mais si "
              "cette page reste fermée plus de {grace} secondes, votre place est perdue.",
        "de": "Wir lassen die Leute in der Reihenfolge ihrer Ankunft herein, sobald Plätze "
              "frei werden. Diese Seite aktualisiert sich selbst; wenn Sie an der Reihe "
              "sind, geht es direkt weiter. Sie können den Tab wechseln, aber wenn diese "
              "Seite länger als {grace} Sekunden geschlossen ist, verfällt Ihr Platz."},
    "status_page": {"en": "Status page", "fr": "Page d'état", "de": "Statusseite"},
    "status": {"en": "Status", "fr": "État", "de": "Status"},
    "posted": {"en": "Posted", "fr": "Publié le", "de": "Veröffentlicht am"},
    "one_moment": {"en": "One moment, please", "fr": "Un instant, s'il vous plaît",
                   "de": "Einen Moment bitte"},
    "unavailable": {"en": "We're very busy and couldn't check your place just now. This "
                          "page tries again by itself in a few seconds.",
                    "fr": "Nous sommes très sollicités et n'avons pas pu vérifier votre "
                          "place. Cette page réessaie toute seule dans quelques secondes.",
                    "de": "Wir sind gerade sehr gefragt und konnten Ihren Platz nicht "
                          "prüfen. Diese Seite versucht es in ein paar Sekunden von "
                          "selbst erneut."},
    "closed_title": {"en": "The line is closed", "fr": "La file est fermée",
                     "de": "Die Warteschlange ist geschlossen"},
    "closed_sorry": {"en": "We're sorry: no new places are being given out.",
                     "fr": "Désolés : aucune nouvelle place n'est attribuée.",
                     "de": "Es tut uns leid: Es werden keine neuen Plätze vergeben."},
    "state_queueing": {
        "en": "Queue running: people are let in first come, first served, as places free "
              "up.",
        "fr": "File en cours : les personnes entrent dans l'ordre d'arrivée, à mesure que "
              "des places se libèrent.",
        "de": "Warteschlange läuft: Einlass in der Reihenfolge der Ankunft, sobald Plätze "
              "frei werden."},
    "state_paused": {"en": "Entry is paused for a moment. Everyone in line keeps their "
                           "place.",
                     "fr": "L'entrée est suspendue un instant. Chacun garde sa place dans "
                           "la file.",
                     "de": "Der Einlass ist kurz pausiert. Alle in der Schlange behalten "
                           "ihren Platz."},
    "state_open": {"en": "Open: there is no queue right now.",
                   "fr": "Ouvert : il n'y a pas de file en ce moment.",
                   "de": "Geöffnet: Im Moment gibt es keine Warteschlange."},
    "state_scheduled": {
        "en": "The sale has not started yet. Everyone who arrives before the start gets a "
              "place in line in random order at the start; after that, first come, first "
              "served.",
        "fr": "La vente n'a pas encore commencé. Toute personne arrivée avant le début "
              "reçoit une place tirée au sort au lancement ; ensuite, premier arrivé, "
              "premier servi.",
        "de": "Der Verkauf hat noch nicht begonnen. Wer vor dem Start kommt, erhält beim "
              "Start einen Platz in zufälliger Reihenfolge; danach gilt: wer zuerst kommt, "
              "kommt zuerst dran."},
    "state_closed": {
        "en": "The line is closed to new arrivals. Everyone already in line will be let "
              "in, in order.",
        "fr": "La file est fermée aux nouveaux arrivants. Toutes les personnes déjà dans "
              "la file entreront, dans l'ordre.",
        "de": "Die Warteschlange ist für Neuankömmlinge geschlossen. Alle, die schon "
              "anstehen, kommen der Reihe nach herein."},
    "state_capture": {
        "en": "Our order system is down. We are taking customers' details and will "
              "process them in the order people arrived.",
        "fr": "Notre système de commande est en panne. Nous enregistrons les coordonnées "
              "des clients et les traiterons dans l'ordre d'arrivée.",
        "de": "Unser Bestellsystem ist ausgefallen. Wir nehmen die Daten der Kunden auf "
              "und bearbeiten sie in der Reihenfolge der Ankunft."},
    "language": {"en": "Language", "fr": "Langue", "de": "Sprache"},
    "other_device": {"en": "Continue on another device", "fr": "Continuer sur un autre appareil",
                     "de": "Auf einem anderen Gerät weitermachen"},
    "other_device_how": {
        "en": "Open this link, or scan the code, on your other device within 10 minutes. Your "
              "place moves there, at the same position, and this device stops holding it.",
        "fr": "Ouvrez ce lien, ou scannez le code, sur votre autre appareil dans les 10 "
              "minutes. Votre place y est transférée, à la même position, et cet appareil "
              "ne la garde plus.",
        "de": "Öffnen Sie diesen Link oder scannen Sie den Code innerhalb von 10 Minuten auf "
              "Ihrem anderen Gerät. Ihr Platz wandert dorthin, an dieselbe Stelle, und "
              "dieses Gerät gibt ihn ab."},
    "keep_open": {
        "en": "Keep this page open until you have opened the link on your other device: "
              "while it is open, your place is kept here.",
        "fr": "Gardez cette page ouverte jusqu'à ce que vous ayez ouvert le lien sur votre "
              "autre appareil : tant qu'elle est ouverte, votre place est gardée ici.",
        "de": "Lassen Sie diese Seite offen, bis Sie den Link auf Ihrem anderen Gerät "
              "geöffnet haben: Solange sie offen ist, bleibt Ihr Platz hier erhalten."},
    "back_to_line": {"en": "Back to the line", "fr": "Retour à la file",
                     "de": "Zurück zur Warteschlange"},
    "qr_alt": {"en": "QR code of the link", "fr": "Code QR du lien", "de": "QR-Code des Links"},
    "moved_title": {"en": "Your place moved", "fr": "Votre place a été transférée",
                    "de": "Ihr Platz ist umgezogen"},
    "moved": {"en": "Your place in line is now on your other device. Carry on there.",
              "fr": "Votre place dans la file est maintenant sur votre autre appareil. "
                    "Continuez là-bas.",
              "de": "Ihr Platz in der Schlange ist jetzt auf Ihrem anderen Gerät. Machen Sie "
                    "dort weiter."},
    "resume_refused": {"en": "This link can't be used: it was used already, has expired, or "
                             "the place it held is gone.",
                       "fr": "Ce lien n'est pas utilisable : il a déjà servi, a expiré, ou la "
                             "place qu'il gardait n'existe plus.",
                       "de": "Dieser Link ist nicht nutzbar: Er wurde schon benutzt, ist "
                             "abgelaufen, oder der Platz existiert nicht mehr."},
    "capture_title": {"en": "Leave your details", "fr": "Laissez vos coordonnées",
                      "de": "Hinterlassen Sie Ihre Daten"},
    "capture_why": {
        "en": "Our order system isn't working right now. Rather than make you wait or try "
              "again later, leave your details here: we will process orders in the order "
              "people arrived and send you a confirmation. You get a reference number as "
              "soon as your details are safely stored.",
        "fr": "Notre système de commande ne fonctionne pas pour le moment. Plutôt que de "
              "vous faire attendre ou revenir plus tard, laissez vos coordonnées ici : nous "
              "traiterons les commandes dans l'ordre d'arrivée et vous enverrons une "
              "confirmation. Vous recevez un numéro de référence dès que vos coordonnées "
              "sont enregistrées en lieu sûr.",
        "de": "Unser Bestellsystem funktioniert gerade nicht. Statt Sie warten oder später "
              "wiederkommen zu lassen: Hinterlassen Sie hier Ihre Daten. Wir bearbeiten die "
              "Bestellungen in der Reihenfolge der Ankunft und schicken Ihnen eine "
              "Bestätigung. Sie erhalten eine Referenznummer, sobald Ihre Daten sicher "
              "gespeichert sind."},
    "place_kept": {"en": "Leaving your details does not cost you your place in line: you "
                         "are still number {n}.",
                   "fr": "Laisser vos coordonnées ne vous fait pas perdre votre place dans "
                         "la file : vous êtes toujours numéro {n}.",
                   "de": "Ihre Daten zu hinterlassen kostet Sie nicht Ihren Platz in der "
                         "Schlange: Sie sind weiterhin Nummer {n}."},
    "notice_session_expired": {"en": "Your session has expired: please reload the page.",
                               "fr": "Votre session a expiré : veuillez recharger la page.",
                               "de": "Ihre Sitzung ist abgelaufen: Bitte laden Sie die Seite "
                                     "neu."},
    "notice_form_expired": {"en": "This form has expired: please send it again.",
                            "fr": "Ce formulaire a expiré : veuillez l'envoyer à nouveau.",
                            "de": "Dieses Formular ist abgelaufen: Bitte senden Sie es "
                                  "erneut."},
    "notice_not_saved": {"en": "We could not save your details just now. Please send the "
                               "form again in a moment.",
                         "fr": "Nous n'avons pas pu enregistrer vos coordonnées. Veuillez "
                               "renvoyer le formulaire dans un instant.",
                         "de": "Wir konnten Ihre Daten gerade nicht speichern. Bitte senden "
                               "Sie das Formular gleich noch einmal."},
    "notice_too_many": {"en": "Too many attempts: please wait a minute and send the form "
                              "again.",
                        "fr": "Trop de tentatives : veuillez patienter une minute puis "
                              "renvoyer le formulaire.",
                        "de": "Zu viele Versuche: Bitte warten Sie eine Minute und senden "
                              "Sie das Formular erneut."},
    "check_fields": {"en": "Please check the fields marked below.",
                     "fr": "Veuillez vérifier les champs signalés ci-dessous.",
                     "de": "Bitte prüfen Sie die unten markierten Felder."},
    "send_details": {"en": "Send my details", "fr": "Envoyer mes coordonnées",
                     "de": "Meine Daten senden"},
    "received_title": {"en": "Details received", "fr": "Coordonnées reçues",
                       "de": "Daten erhalten"},
    "received": {"en": "Your details are safely stored. Your reference:",
                 "fr": "Vos coordonnées sont enregistrées en lieu sûr. Votre référence :",
                 "de": "Ihre Daten sind sicher gespeichert. Ihre Referenz:"},
    "received_keep": {
        "en": "Keep it: we will process orders in the order people arrived and confirm "
              "yours. Sending the form again will not create a second order.",
        "fr": "Gardez-la : nous traiterons les commandes dans l'ordre d'arrivée et "
              "confirmerons la vôtre. Renvoyer le formulaire ne crée pas de seconde "
              "commande.",
        "de": "Bewahren Sie sie auf: Wir bearbeiten die Bestellungen in der Reihenfolge "
              "der Ankunft und bestätigen Ihre. Erneutes Absenden erzeugt keine zweite "
              "Bestellung."},
    "notify_title": {"en": "Don't want to wait here?", "fr": "Pas envie d'attendre ici ?",
                     "de": "Keine Lust, hier zu warten?"},
    "notify_how": {"en": "Leave an email address or a mobile number and go: we'll send you a "
                         "link when it's your turn, and keep your place meanwhile.",
                   "fr": "Laissez une adresse e-mail ou un numéro de mobile et partez : nous "
                         "vous enverrons un lien quand ce sera votre tour, et gardons votre "
                         "place en attendant.",
                   "de": "Hinterlassen Sie eine E-Mail-Adresse oder Handynummer und gehen "
                         "Sie: Wir schicken Ihnen einen Link, wenn Sie an der Reihe sind, "
                         "und halten Ihren Platz so lange frei."},
    "email": {"en": "Email", "fr": "E-mail", "de": "E-Mail"},
    "phone": {"en": "Mobile number", "fr": "Numéro de mobile", "de": "Handynummer"},
    "notify_button": {"en": "Tell me when it's my turn", "fr": "Prévenez-moi",
                      "de": "Benachrichtigen Sie mich"},
    "notify_done": {"en": "Done: we'll send you a link when it's your turn. You can close "
                          "this page; your place is kept. Once the link arrives, you have "
                          "{minutes} minutes to open it.",
                    "fr": "C'est noté : nous vous enverrons un lien quand ce sera votre "
                          "tour. Vous pouvez fermer cette page ; votre place est gardée. "
                          "Une fois le lien reçu, vous avez {minutes} minutes pour l'ouvrir.",
                    "de": "Erledigt: Wir schicken Ihnen einen Link, wenn Sie an der Reihe "
                          "sind. Sie können diese Seite schließen; Ihr Platz bleibt. Sobald "
                          "der Link da ist, haben Sie {minutes} Minuten, ihn zu öffnen."},
    "to_shop": {"en": "Go to the shop", "fr": "Aller à la boutique", "de": "Zum Shop"},
}


def field_label(name: str, fallback: str, lang: str) -> str:
    """A capture field's label in ``lang``: ours for the usual names (``email``,
    ``postal_code``, ...), else the operator's own (``fallback``)."""
    return text(f"field_{name}", lang) if f"field_{name}" in TEXTS else fallback


def field_error(code: str, lang: str, max_length: int = 0) -> str:
    """What :func:`waitingroom.fields.validate` found wrong (``code``), in words; words
    that are no code (an unreadable form's) as they are."""
    return text(f"error_{code}", lang, n=max_length) if f"error_{code}" in TEXTS else code


def said(key_or_words: str, lang: str, **values: object) -> str:
    """The text ``key_or_words`` names in ``lang``; words that are not a text key (a
    parser's own message, say) are returned as they are."""
    return text(key_or_words, lang, **values) if key_or_words in TEXTS else key_or_words


def text(key: str, lang: str, **values: object) -> str:
    """The text ``key`` in ``lang`` (English if missing), with ``values`` filled in."""
    entry = TEXTS[key]
    words = entry.get(lang) or entry[DEFAULT]
    return words.format(**values) if values else words


def pick(chosen: str | None, accept_language: str) -> str:
    """The language to answer in: ``chosen`` (switcher or cookie) if we have it, else
    the best ``Accept-Language`` match we have, else English."""
    if chosen in LANGUAGES:
        return chosen
    best, best_quality = DEFAULT, 0.0
    for part in accept_language.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower()[:2]
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if code in LANGUAGES and quality > best_quality:
            best, best_quality = code, quality
    return best
