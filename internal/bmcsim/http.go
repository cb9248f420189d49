package bmcsim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

const sessionsPath = root + "/SessionService/Sessions"

// ServeHTTP implements http.Handler.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	if p == "/redfish" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]string{"v1": root + "/"})
		return
	}
	if !public(r.Method, p) && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="bmc-sim"`)
		writeError(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "authentication required")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.serveGet(w, r, p)
	case http.MethodPost:
		switch {
		case p == sessionsPath:
			s.createSession(w, r)
		case strings.HasPrefix(p, root+"/Systems/") && strings.HasSuffix(p, "/Actions/ComputerSystem.Reset"):
			id := strings.TrimSuffix(strings.TrimPrefix(p, root+"/Systems/"), "/Actions/ComputerSystem.Reset")
			s.reset(w, r, id)
		default:
			writeError(w, http.StatusMethodNotAllowed, "Base.1.8.OperationNotAllowed", "POST not supported on "+p)
		}
	case http.MethodDelete:
		if strings.HasPrefix(p, sessionsPath+"/") {
			s.deleteSession(w, strings.TrimPrefix(p, sessionsPath+"/"))
			return
		}
		writeError(w, http.StatusMethodNotAllowed, "Base.1.8.OperationNotAllowed", "DELETE not supported on "+p)
	default:
		writeError(w, http.StatusMethodNotAllowed, "Base.1.8.OperationNotAllowed", r.Method+" not supported")
	}
}

// public reports whether a request needs no authentication: the service
// root, OData documents, and session login.
func public(method, p string) bool {
	switch {
	case method == http.MethodPost:
		return p == sessionsPath
	case method == http.MethodGet || method == http.MethodHead:
		return p == root || p == root+"/odata" || p == root+"/$metadata"
	}
	return false
}

func (s *Sim) authorized(r *http.Request) bool {
	if s.opts.Username == "" {
		return true
	}
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		s.mu.Lock()
		_, ok := s.sessions[tok]
		s.mu.Unlock()
		return ok
	}
	u, p, ok := r.BasicAuth()
	return ok && s.credentialsMatch(u, p)
}

func (s *Sim) credentialsMatch(u, p string) bool {
	uok := subtle.ConstantTimeCompare([]byte(u), []byte(s.opts.Username))
	pok := subtle.ConstantTimeCompare([]byte(p), []byte(s.opts.Password))
	return uok&pok == 1
}

func (s *Sim) serveGet(w http.ResponseWriter, r *http.Request, p string) {
	s.mu.Lock()
	body, ct, err := s.resource(p)
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Base.1.8.InternalError", err.Error())
		return
	}
	if body == nil {
		writeError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no resource at "+r.URL.Path)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// resource returns the body served at p (nil if none). Call with s.mu held.
func (s *Sim) resource(p string) ([]byte, string, error) {
	const js = "application/json"
	switch {
	case p == root+"/Systems":
		b, err := s.renderCollection()
		return b, js, err
	case p == sessionsPath:
		b, err := s.renderSessions()
		return b, js, err
	case strings.HasPrefix(p, sessionsPath+"/"):
		id := strings.TrimPrefix(p, sessionsPath+"/")
		for _, sid := range s.sessions {
			if sid == id {
				b, err := renderSession(id)
				return b, js, err
			}
		}
		return nil, "", nil
	case strings.HasPrefix(p, root+"/Systems/"):
		rest := strings.TrimPrefix(p, root+"/Systems/")
		id, sub, _ := strings.Cut(rest, "/")
		sys, ok := s.systems[id]
		if !ok {
			return nil, "", nil
		}
		switch sub {
		case "":
			b, err := s.renderSystem(id, sys)
			return b, js, err
		case "ResetActionInfo":
			if !sys.cfg.ActionInfo {
				return nil, "", nil
			}
			b, err := renderActionInfo(id, sys)
			return b, js, err
		}
		d, ok := s.tree[systemPath(s.template)+"/"+sub]
		if !ok {
			return nil, "", nil
		}
		return s.rewrite(d.body, id), d.contentType, nil
	}
	d, ok := s.tree[p]
	if !ok {
		return nil, "", nil
	}
	return d.body, d.contentType, nil
}

func (s *Sim) createSession(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UserName string
		Password string
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "malformed session request")
		return
	}
	if s.opts.Username != "" && !s.credentialsMatch(req.UserName, req.Password) {
		writeError(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "invalid credentials")
		return
	}
	var buf [16]byte
	_, _ = rand.Read(buf[:])
	tok := hex.EncodeToString(buf[:])
	s.mu.Lock()
	s.nextSess++
	id := fmt.Sprintf("S%d", s.nextSess)
	s.sessions[tok] = id
	s.mu.Unlock()
	b, _ := renderSession(id)
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", sessionsPath+"/"+id)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
}

func (s *Sim) deleteSession(w http.ResponseWriter, id string) {
	s.mu.Lock()
	found := false
	for tok, sid := range s.sessions {
		if sid == id {
			delete(s.sessions, tok)
			found = true
		}
	}
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no session "+id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func renderSession(id string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"@odata.type": "#Session.v1_6_0.Session",
		"@odata.id":   sessionsPath + "/" + id,
		"Id":          id,
		"Name":        "User Session",
	})
}

func (s *Sim) renderSessions() ([]byte, error) {
	members := []map[string]string{}
	for _, id := range s.sessions {
		members = append(members, map[string]string{"@odata.id": sessionsPath + "/" + id})
	}
	return json.Marshal(map[string]any{
		"@odata.type":         "#SessionCollection.SessionCollection",
		"@odata.id":           sessionsPath,
		"Name":                "Session Collection",
		"Members@odata.count": len(members),
		"Members":             members,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers a Redfish error object.
func writeError(w http.ResponseWriter, code int, id, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code":    id,
		"message": msg,
		"@Message.ExtendedInfo": []map[string]string{{
			"MessageId": id,
			"Message":   msg,
		}},
	}})
}
