"""The static web page (`edgevae web`) and its loopback server (`edgevae serve`), beside the JavaScript runtime in web/."""
